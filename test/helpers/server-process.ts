/**
 * Real server processes for crash and shutdown tests: the benchmarks' launcher, shared.
 */
export { freePort, startServer, type ServerProcess } from '../../bench/lib/server.ts';
