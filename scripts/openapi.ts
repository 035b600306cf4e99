/**
 * Writes `openapi.yaml` from the routes' own schemas (the contract test checks they agree):
 *   npx tsx scripts/openapi.ts [--check]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';

const dir = mkdtempSync(join(tmpdir(), 'r3openapi-'));
try {
  const app = await buildApp(loadConfig({ overrides: { store: { dataDir: dir }, server: { logLevel: 'silent' }, analysis: { workers: 1 } } }));
  await app.ready();
  const yaml = app.swagger({ yaml: true });
  await app.close();
  const target = new URL('../openapi.yaml', import.meta.url);
  if (process.argv.includes('--check')) {
    const same = readFileSync(target, 'utf8') === yaml;
    console.log(same ? 'openapi.yaml is up to date' : 'openapi.yaml differs: run npx tsx scripts/openapi.ts');
    process.exit(same ? 0 : 1);
  }
  writeFileSync(target, yaml);
  console.log(`wrote openapi.yaml (${yaml.length} bytes)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
