// Builds native/ (the r3kernels addon) with node-gyp against the running Node's own headers, so
// nothing is downloaded. A failed build prints why and exits 0: the server then falls back to the
// pure-TS kernels. Pass --strict (CI) to exit non-zero instead. Usage: node native/build.mjs [--strict]

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
// Node's install prefix holds include/node/*.h; pointing node-gyp at it keeps the build offline.
const nodedir = path.dirname(path.dirname(process.execPath));
const FALLBACK = 'r3serve will use the pure-TypeScript kernels (slower, same results).';

/** Prints the reason and ends the script: status 0 unless --strict. */
function giveUp(reason) {
  console.warn(`[r3kernels] native build skipped: ${reason}\n[r3kernels] ${FALLBACK}`);
  process.exit(strict ? 1 : 0);
}

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  giveUp('node-gyp is not installed (it ships with npm; install it or run `npm i -g node-gyp`).');
}
if (!existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  giveUp(`no Node headers under ${path.join(nodedir, 'include', 'node')} (this Node build ships without them).`);
}

const started = Date.now();
const result = spawnSync(process.execPath, [gyp, 'rebuild', '--release', `--nodedir=${nodedir}`], {
  cwd: here,
  stdio: 'inherit',
  env: { ...process.env, npm_config_nodedir: nodedir },
});
if (result.error) giveUp(`could not run node-gyp: ${result.error.message}`);
if (result.status !== 0) giveUp(`node-gyp exited with status ${result.status} (see the compiler output above).`);

const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`[r3kernels] built native/build/Release/r3kernels.node in ${seconds} s`);
