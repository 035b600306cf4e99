/**
 * Priorities of the worker threads. Background work (analysis of ingested documents, training
 * steps) runs at this nice value, the event loop at the process's own: when every core is busy,
 * the scheduler gives searches the CPU first and background work takes what is left (it still
 * uses every idle cycle). Applied by `worker-entry.mjs` through `workerData.nice`.
 */
export const BACKGROUND_THREAD_NICE = 10;
