/**
 * Configuration: defaults, file, environment and overrides merge in that order; bad values are
 * rejected once with CONFIG_INVALID; the result is frozen.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseApiKeys } from '../../src/config/load.ts';
import { tmpDir } from '../helpers/index.ts';

describe('loadConfig', () => {
  it('applies defaults, then file, env and overrides', () => {
    const tmp = tmpDir();
    try {
      const file = join(tmp.dir, 'c.yaml');
      writeFileSync(file, 'server:\n  port: 9000\n  host: 127.0.0.2\nsearch:\n  k1: 0.9\n');
      const c = loadConfig({ file, env: { R3SERVE_PORT: '9100' }, overrides: { search: { b: 0.5 } } });
      expect(c.server.port).toBe(9100);
      expect(c.server.host).toBe('127.0.0.2');
      expect(c.search).toMatchObject({ k1: 0.9, b: 0.5, defaultM: 20 });
      expect(c.analysis.workers).toBeGreaterThanOrEqual(1);
      expect(Object.isFrozen(c.server)).toBe(true);
    } finally {
      tmp.cleanup();
    }
  });

  it('rejects invalid values with CONFIG_INVALID', () => {
    expect(() => loadConfig({ overrides: { server: { port: 70000 } } })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => loadConfig({ env: { R3SERVE_PORT: 'abc' } })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => loadConfig({ file: '/nonexistent/r3.yaml' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('parses API keys from the environment', () => {
    expect(parseApiKeys('abcdefgh1:search,write;zyxwvuts2:admin')).toEqual([
      { key: 'abcdefgh1', scopes: ['search', 'write'] },
      { key: 'zyxwvuts2', scopes: ['admin'] },
    ]);
    expect(loadConfig({ env: { R3SERVE_API_KEYS: 'abcdefgh1:search' } }).auth.keys).toHaveLength(1);
  });
});
