/**
 * The ONNX seam, the model-directory contract and the `onnx` encoder, on the committed tiny random
 * models (test/fixtures/models, made by scripts/make-tiny-models.ts). Real onnxruntime, no mocks;
 * corrupt or invalid directories are built in a temp dir from copies of the fixtures.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type WordPieceTokenizer } from '../../src/analysis/wordpiece.ts';
import { loadModelDir as loadModelDirWith, type ModelDir } from '../../src/encoder/model-dir.ts';
import { availableProviders, dispose, openSession, run, type EncoderSession, type Feed } from '../../src/encoder/onnx.ts';
import { createBackboneCache, isDense, openOnnxEncoder as openOnnxEncoderWith, type BackboneOutput, type OnnxEncoder, type OnnxEncoderOptions } from '../../src/encoder/onnx-encoder.ts';
import type { SparseVector } from '../../src/types.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const fixture = (name: string): string => join(FIXTURES, name);
/** encoder/ takes its tokenizer loader from analysis/ (it must not import it): the tests wire them. */
const loadModelDir = (dir: string): Promise<ModelDir<WordPieceTokenizer>> => loadModelDirWith(dir, (p) => loadTokenizer(p));
const openOnnxEncoder = async (dir: string, opts: OnnxEncoderOptions = {}): Promise<OnnxEncoder<WordPieceTokenizer>> => openOnnxEncoderWith(await loadModelDir(dir), opts);
/** One intra-op thread: the test machine has two cores and vitest runs two files at once. */
const THREADS = 1;
const VOCAB_SIZE = 568;
const HIDDEN_SIZE = 32;

const QUERIES = ['what is the capital of france', 'protein cell study'];
const PASSAGES = [
  'Paris is the capital and largest city of France.',
  'The protein was found in every cell of the study group, a result that may change how we think about disease.',
  'Water covers most of the earth.',
];

function int64(rows: number[][]): Feed {
  const S = rows[0].length;
  return { type: 'int64', data: BigInt64Array.from(rows.flat(), (x) => BigInt(x)), dims: [rows.length, S] };
}

function expectClose(a: BackboneOutput, b: BackboneOutput): void {
  if (isDense(a)) {
    expect(isDense(b)).toBe(true);
    expect(a.length).toBe((b as Float32Array).length);
    a.forEach((x, i) => expect(x).toBeCloseTo((b as Float32Array)[i], 5));
    return;
  }
  const s = b as SparseVector;
  expect(Array.from(a.ids)).toEqual(Array.from(s.ids));
  a.weights.forEach((x, i) => expect(x).toBeCloseTo(s.weights[i], 5));
}

function expectWellFormedSparse(v: SparseVector, dim: number): void {
  expect(v.ids.length).toBe(v.weights.length);
  for (let k = 0; k < v.ids.length; k++) {
    if (k > 0) expect(v.ids[k]).toBeGreaterThan(v.ids[k - 1]);
    expect(v.ids[k]).toBeLessThan(dim);
    expect(v.weights[k]).toBeGreaterThan(0);
  }
}

describe('onnx.ts seam', () => {
  let session: EncoderSession;
  beforeAll(async () => {
    session = await openSession(join(fixture('sidr-a'), 'model.onnx'), { providers: ['cpu'], intraOpNumThreads: THREADS });
  }, 120_000);
  afterAll(async () => {
    await dispose(session);
  });

  it('reports the provider and the declared inputs and outputs', () => {
    expect(session.provider).toBe('cpu');
    expect(availableProviders()).toContain('cpu');
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    expect(session.outputs).toEqual([{ name: 'logits', type: 'float32', shape: ['batch', 'sequence', VOCAB_SIZE] }]);
  });

  it('runs, with exact output dims, dropping undeclared feeds', async () => {
    const ids = int64([[2, 50, 60, 3]]);
    const out = await run(session, { input_ids: ids, attention_mask: int64([[1, 1, 1, 1]]), token_type_ids: int64([[0, 0, 0, 0]]), extra: ids });
    expect(out.logits.dims).toEqual([1, 4, VOCAB_SIZE]);
    expect(out.logits.data).toBeInstanceOf(Float32Array);
  });

  it('throws ENCODER_INPUT_MISSING with names, dtypes and dims', async () => {
    const err = await run(session, { input_ids: int64([[2, 3]]) }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'ENCODER_INPUT_MISSING',
      details: {
        missing: ['attention_mask', 'token_type_ids'],
        given: [{ name: 'input_ids', type: 'int64', dims: [1, 2] }],
      },
    });
    expect((err as { details: { expected: unknown[] } }).details.expected).toContainEqual({ name: 'attention_mask', type: 'int64', shape: ['batch', 'sequence'] });
  });

  it('wraps a runtime failure as ENCODER_RUN_FAILED with the cause', async () => {
    const bad: Feed = { type: 'float32', data: new Float32Array(2), dims: [1, 2] };
    const err = await run(session, { input_ids: bad, attention_mask: int64([[1, 1]]), token_type_ids: int64([[0, 0]]) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENCODER_RUN_FAILED', details: { provider: 'cpu' } });
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it('opens the same model from bytes', async () => {
    const bytes = await readFile(join(fixture('dense-b'), 'model.onnx'));
    const s = await openSession(new Uint8Array(bytes), { providers: ['cpu'], intraOpNumThreads: THREADS });
    expect(s.inputNames).toEqual(['input_ids', 'attention_mask']);
    await dispose(s);
    await dispose(s); // idempotent
    await expect(run(s, {})).rejects.toMatchObject({ code: 'ENCODER_RUN_FAILED' });
  });
});

describe.each(['sidr-a', 'sidr-b', 'splade-a', 'splade-b', 'dense-a', 'dense-b'])('onnx encoder on %s', (name) => {
  let enc: OnnxEncoder<WordPieceTokenizer>;
  beforeAll(async () => {
    // Default providers: CUDA and WebGPU are probed and must fall back to CPU on this machine.
    enc = await openOnnxEncoder(fixture(name), { intraOpNumThreads: THREADS });
  }, 120_000);
  afterAll(async () => {
    await enc.dispose();
  });

  it('reports the provider chosen (cpu here), its kind, dimension and a model hash', () => {
    // The first provider that opened; on a machine without CUDA libraries or a WebGPU adapter, cpu.
    expect(enc.provider).toBe(availableProviders()[0]);
    if (availableProviders().length === 1) expect(enc.provider).toBe('cpu');
    expect(enc.kind).toBe(name.split('-')[0]);
    expect(enc.dim).toBe(enc.kind === 'dense' ? HIDDEN_SIZE : VOCAB_SIZE);
    expect(enc.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('encodes queries and passages with exact dims, deterministically', async () => {
    const q1 = await enc.encodeQueries(QUERIES);
    const p1 = await enc.encodePassages(PASSAGES);
    expect(q1).toHaveLength(QUERIES.length);
    expect(p1).toHaveLength(PASSAGES.length);
    for (const v of [...q1, ...p1]) {
      if (enc.kind === 'dense') {
        expect(isDense(v) && v.length).toBe(HIDDEN_SIZE);
      } else {
        expect(isDense(v)).toBe(false);
        expectWellFormedSparse(v as SparseVector, VOCAB_SIZE);
      }
    }
    const q2 = await enc.encodeQueries(QUERIES);
    const p2 = await enc.encodePassages(PASSAGES);
    q1.forEach((v, i) => expectClose(v, q2[i]));
    p1.forEach((v, i) => expectClose(v, p2[i]));
  });

  it('gives each text the same output alone as in a padded batch', async () => {
    const alone = await enc.encodePassages([PASSAGES[2]]);
    const batched = await enc.encodePassages(PASSAGES);
    expectClose(alone[0], batched[2]);
  });

  it('pools as its kind says', async () => {
    if (enc.kind === 'sidr') {
      // SiDR: elu1p > 0 everywhere, so the support is exactly top-k ∪ the tokens present.
      const [v] = (await enc.encodeQueries([QUERIES[0]])) as SparseVector[];
      const present = enc.tokenizer.tokenizeToIds(QUERIES[0]);
      const ids = new Set(v.ids);
      for (const id of present) expect(ids.has(id)).toBe(true);
      const topK = enc.model.manifest.topK;
      expect(v.ids.length).toBeGreaterThanOrEqual(topK);
      expect(v.ids.length).toBeLessThanOrEqual(topK + present.length);
      for (const s of enc.tokenizer.specialIds) expect(ids.has(s)).toBe(false);
    } else if (enc.kind === 'splade') {
      // SPLADE: log(1 + relu) zeroes most dimensions of this (negatively biased) model.
      const [v] = (await enc.encodeQueries([QUERIES[1]])) as SparseVector[];
      expect(v.ids.length).toBeGreaterThan(0);
      expect(v.ids.length).toBeLessThan(VOCAB_SIZE / 4);
    } else {
      // Dense: recompute mean / CLS pooling from the raw last_hidden_state through the seam.
      const [v] = (await enc.encodeQueries([QUERIES[1]])) as Float32Array[];
      const ids = enc.tokenizer.encode(QUERIES[1], enc.model.manifest.maxQueryLength).ids;
      const s = await openSession(enc.model.queryPath, { providers: ['cpu'], intraOpNumThreads: THREADS });
      const zeros = ids.map(() => 0);
      const out = await run(s, { input_ids: int64([ids]), attention_mask: int64([ids.map(() => 1)]), token_type_ids: int64([zeros]) });
      await dispose(s);
      const h = out.last_hidden_state.data as Float32Array;
      const rows = enc.model.manifest.pooling === 'cls' ? 1 : ids.length;
      for (let k = 0; k < HIDDEN_SIZE; k++) {
        let sum = 0;
        for (let t = 0; t < rows; t++) sum += h[t * HIDDEN_SIZE + k];
        expect(v[k]).toBeCloseTo(sum / rows, 5);
      }
    }
  });
});

describe('variants and hot swap', () => {
  const encoders: OnnxEncoder[] = [];
  afterAll(async () => {
    for (const e of encoders) await e.dispose();
  });

  it('a and b variants share the contract but not the weights', async () => {
    for (const n of ['sidr-a', 'sidr-b']) encoders.push(await openOnnxEncoder(fixture(n), { providers: ['cpu'], intraOpNumThreads: THREADS }));
    const [a, b] = encoders;
    expect(a.hash).not.toBe(b.hash);
    expect(a.dim).toBe(b.dim);
    const [va] = (await a.encodeQueries([QUERIES[0]])) as SparseVector[];
    const [vb] = (await b.encodeQueries([QUERIES[0]])) as SparseVector[];
    expect(Array.from(va.ids)).not.toEqual(Array.from(vb.ids));
  }, 120_000);

  it('caches passage outputs per (model hash, doc key)', async () => {
    const cache = createBackboneCache(2);
    const enc = await openOnnxEncoder(fixture('splade-a'), { providers: ['cpu'], intraOpNumThreads: THREADS, cache });
    encoders.push(enc);
    const [first] = await enc.encodePassages([{ key: 'd1', text: PASSAGES[0] }]);
    const [again] = await enc.encodePassages([{ key: 'd1', text: 'ignored: the key hits' }]);
    expect(again).toBe(first);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 1 });
    await enc.encodePassages([{ key: 'd2', text: PASSAGES[1] }, { key: 'd3', text: PASSAGES[2] }]);
    expect(cache.size).toBe(2);
    expect(cache.get(enc.hash, 'd1')).toBeUndefined(); // least recently used, evicted
    cache.deleteDoc('d3');
    expect(cache.get(enc.hash, 'd3')).toBeUndefined();
    expect(cache.get('another-model', 'd2')).toBeUndefined();
  }, 120_000);
});

describe('model directory contract', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'r3-model-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** Copy a fixture into the temp dir and rewrite its r3serve.json. */
  async function variant(name: string, from: string, patch: (m: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
    const dir = join(tmp, name);
    await cp(fixture(from), dir, { recursive: true });
    const m = JSON.parse(await readFile(join(dir, 'r3serve.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'r3serve.json'), JSON.stringify(patch(m)));
    return dir;
  }

  it('loads a fixture with normalized fields and a stable hash', async () => {
    const a = await loadModelDir(fixture('dense-b'));
    const b = await loadModelDir(fixture('dense-b'));
    expect(a.hash).toBe(b.hash);
    expect(a.manifest).toMatchObject({ kind: 'dense', pooling: 'cls', outputs: 'last_hidden_state', vocabShift: 0 });
    expect(a.config).toEqual({ modelType: 'bert', hiddenSize: HIDDEN_SIZE, vocabSize: VOCAB_SIZE, maxPositionEmbeddings: 128 });
    expect(a.shared).toBe(true);
    expect(a.tokenizerFile).toBe('vocab.txt');
  });

  it('MODEL_NOT_FOUND for a missing directory or r3serve.json', async () => {
    await expect(loadModelDir(join(tmp, 'nope'))).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    await expect(loadModelDir(FIXTURES)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND', details: { file: 'r3serve.json' } });
  });

  it.each([
    { field: 'kind', patch: { kind: 'colbert' } },
    { field: 'vocabShift', patch: { vocabShift: 1.5 } },
    { field: 'topK', patch: { topK: 0 } },
    { field: 'maxQueryLength', patch: { maxQueryLength: 1 } },
    { field: 'maxPassageLength', patch: { maxPassageLength: 4096 } },
    { field: 'pooling', patch: { pooling: 'max' } },
    { field: 'files.query', patch: { files: { query: 'missing.onnx', passage: 'model.onnx' } } },
    { field: 'files.passage', patch: { files: { query: 'model.onnx', passage: '../sidr-a/model.onnx' } } },
  ])('MODEL_INVALID names r3serve.json field $field', async ({ field, patch }) => {
    const dir = await variant(`bad-${field}`, 'sidr-a', (m) => ({ ...m, ...patch }));
    const err = await loadModelDir(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MODEL_INVALID', details: { field } });
  });

  it('MODEL_INVALID when the named output does not exist (checked on open)', async () => {
    const dir = await variant('bad-outputs', 'splade-b', (m) => ({ ...m, outputs: 'pooler_output' }));
    await expect(openOnnxEncoder(dir, { providers: ['cpu'] })).rejects.toMatchObject({
      code: 'MODEL_INVALID',
      details: { file: 'r3serve.json', field: 'outputs', available: ['logits'] },
    });
  });

  it('MODEL_INVALID when config.json vocab_size disagrees with the vocabulary or the output', async () => {
    const dir = await variant('bad-config', 'sidr-b', (m) => m);
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 100 }));
    await expect(loadModelDir(dir)).rejects.toMatchObject({ code: 'MODEL_INVALID', details: { file: 'config.json', field: 'vocab_size' } });
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 600 }));
    await expect(openOnnxEncoder(dir, { providers: ['cpu'] })).rejects.toMatchObject({ code: 'MODEL_INVALID', details: { field: 'vocab_size' } });
  });

  it('a corrupt ONNX file fails with MODEL_INVALID and its cause', async () => {
    const dir = await variant('corrupt', 'dense-a', (m) => m);
    const bytes = await readFile(join(dir, 'model.onnx'));
    await writeFile(join(dir, 'model.onnx'), bytes.subarray(0, Math.floor(bytes.length / 3)));
    const err = await openOnnxEncoder(dir, { providers: ['cpu'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MODEL_INVALID' });
    expect((err as Error).cause).toBeDefined();
  });

  it('applies vocabShift: term id = vocabulary id + shift', async () => {
    const dir = await variant('shifted', 'sidr-a', (m) => ({ ...m, vocabShift: 1000 }));
    const base = await openOnnxEncoder(fixture('sidr-a'), { providers: ['cpu'], intraOpNumThreads: THREADS });
    const shifted = await openOnnxEncoder(dir, { providers: ['cpu'], intraOpNumThreads: THREADS });
    try {
      expect(shifted.hash).not.toBe(base.hash);
      const [a] = (await base.encodeQueries([QUERIES[0]])) as SparseVector[];
      const [b] = (await shifted.encodeQueries([QUERIES[0]])) as SparseVector[];
      expect(Array.from(b.ids)).toEqual(Array.from(a.ids, (id) => id + 1000));
      expect(Array.from(b.weights)).toEqual(Array.from(a.weights));
    } finally {
      await base.dispose();
      await shifted.dispose();
    }
  }, 120_000);
});
