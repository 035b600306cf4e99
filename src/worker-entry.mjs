// Worker-thread bootstrap: registers the TypeScript loader inside the worker (loader hooks of
// the parent thread do not reach workers on Node 20), then imports the module named in
// workerData.module (a file URL).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
