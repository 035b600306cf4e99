/**
 * Priorities of the worker threads. Background work (analysis of ingested documents, training
 * steps) runs at this nice value, the event loop at the process's own: when every core is busy,
 * the scheduler gives searches the CPU first and background work takes what is left (it still
 * uses every idle cycle). Applied by `worker-entry.mjs` through `workerData.nice`.
 */
export const BACKGROUND_THREAD_NICE = 10;

/**
 * Node flags the server process starts with (`npm start`, and every benchmark that spawns it).
 * `--v8-pool-size=1`: V8 runs garbage-collection and compilation jobs of every isolate (the event
 * loop's and each worker's) on a pool of helper threads, four by default, at normal priority.
 * On a machine with few cores, those helpers — busy with the garbage of training steps and bulk
 * analysis — take the CPU from the event loop: one helper halves the p99 of searches during
 * training on two cores (bench/rcl-load.ts). On a large machine, start with a bigger pool
 * (`npx tsx --v8-pool-size=4 src/main.ts`).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--v8-pool-size=1'];
