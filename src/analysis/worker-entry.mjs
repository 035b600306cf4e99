// Worker-thread bootstrap: registers the TypeScript loader inside the worker (loader hooks of
// the parent thread do not reach workers on Node 20), then runs the analysis worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
