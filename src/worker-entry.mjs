// Worker-thread bootstrap: registers the TypeScript loader inside the worker (loader hooks of
// the parent thread do not reach workers on Node 20), lowers the thread's CPU priority when
// workerData.nice asks for it, then imports the module named in workerData.module (a file URL).
//
// Background threads (analysis, training) run at a higher nice value than the event loop, so
// that when every core is busy the scheduler lets searches run first. Linux keeps the nice value
// per thread; where it cannot be set (another OS, a sandbox) the thread keeps its priority.
import { setPriority } from 'node:os';
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

if (typeof workerData.nice === 'number' && workerData.nice > 0) {
  try {
    setPriority(workerData.nice);
  } catch {
    // not permitted here: run at the inherited priority
  }
}
register();
await import(workerData.module);
