/**
 * The `onnx` retriever's serving contract on the tiny sidr model: E(q) mapped to index terms by
 * token string, f_θ = E(q)·E(d) equal to the backbone's own outputs (worker thread and in-thread
 * alike), a pin that keeps its model through a swap until released, and γ calibration.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/analysis/wordpiece.ts';
import { loadModelDir } from '../../src/encoder/model-dir.ts';
import { openOnnxEncoder, type OnnxEncoder } from '../../src/encoder/onnx-encoder.ts';
import type { RetrieverFactory } from '../../src/search/collections.ts';
import { isModelSwappable, openOnnxRetrieverFor, type OnnxRetriever } from '../../src/search/onnx-retriever.ts';
import type { SparseVector } from '../../src/types.ts';
import { buildTestApp, type TestApp } from '../helpers/index.ts';

const MODELS = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const factory: RetrieverFactory = async (c, store) => (c.options.retriever.kind === 'onnx' ? openOnnxRetrieverFor(c, store) : undefined);
const DOCS = [
  { id: 'a', title: 'France', text: 'Paris is the capital and largest city of France.' },
  { id: 'b', text: 'The protein was found in every cell of the study group.' },
  { id: 'c', text: 'Water covers most of the earth.' },
  { id: 'd', text: 'Berlin is the capital of Germany.' },
];
const QUERY = 'what is the capital of france';

function dot(a: SparseVector, b: SparseVector): number {
  const m = new Map(Array.from(a.ids, (id, k) => [id, a.weights[k]]));
  let s = 0;
  b.ids.forEach((id, k) => (s += (m.get(id) ?? 0) * b.weights[k]));
  return s;
}

describe('OnnxRetriever', () => {
  let t: TestApp;
  let direct: OnnxEncoder;
  const retriever = (name: string): OnnxRetriever => {
    const r = t.app.engine.collections.get(name).searcher.retriever;
    if (!isModelSwappable(r)) throw new Error('not onnx');
    return r;
  };

  beforeAll(async () => {
    t = await buildTestApp({}, { retrieverFactory: factory });
    for (const [name, inThread] of [['w', true], ['m', false]] as const) {
      const res = await t.app.inject({ method: 'PUT', url: `/collections/${name}`, payload: { retriever: { kind: 'onnx', model: join(MODELS, 'sidr-a'), providers: ['cpu'], threads: 1, inThread } } });
      expect(res.statusCode, res.body).toBe(201);
      expect((await t.app.inject({ method: 'POST', url: '/documents', payload: { collection: name, documents: DOCS } })).statusCode).toBe(200);
    }
    direct = await openOnnxEncoder(await loadModelDir(join(MODELS, 'sidr-a'), (p) => loadTokenizer(p)), { providers: ['cpu'], intraOpNumThreads: 1, cache: false });
  }, 120_000);
  afterAll(async () => {
    await direct.dispose();
    await t.close();
  });

  it('maps E(q) to index terms by token string and scores E(q)·E(d) like the backbone (worker and in-thread)', async () => {
    const [eq] = (await direct.encodeQueries([QUERY])) as SparseVector[];
    const texts = DOCS.map((d) => (d.title ? `${d.title}\n${d.text}` : d.text));
    const ed = (await direct.encodePassages(texts)) as SparseVector[];
    const scores: Float32Array[] = [];
    for (const name of ['w', 'm']) {
      const c = t.app.engine.collections.get(name);
      const pin = retriever(name).pin();
      const qv = await pin.encodeQuery(c.searcher.queryTerms(QUERY), QUERY);
      // Every kept dimension is an index term with the model's weight; model tokens absent from the index are dropped.
      const tok = direct.tokenizer as unknown as { idToToken(id: number): string | undefined };
      const inIndex = Array.from(eq.ids).filter((v) => c.index.termId(tok.idToToken(v)!) !== undefined);
      expect(qv.ids.length).toBe(inIndex.length);
      expect(qv.ids.length).toBeLessThan(eq.ids.length);
      for (let k = 0; k < qv.ids.length; k++) {
        const at = eq.ids.findIndex((id) => tok.idToToken(id) === c.index.term(qv.ids[k]));
        expect(at).toBeGreaterThanOrEqual(0);
        expect(qv.weights[k]).toBeCloseTo(eq.weights[at], 5);
        if (k > 0) expect(qv.ids[k]).toBeGreaterThan(qv.ids[k - 1]);
      }
      const docIds = Uint32Array.from(DOCS, (d) => c.index.getDocument(d.id)!.docId);
      const s = await pin.rerank(qv, docIds);
      pin.release?.();
      s.forEach((x, i) => expect(x).toBeCloseTo(dot(eq, ed[i]), 3));
      scores.push(s);
    }
    scores[0].forEach((x, i) => expect(x).toBeCloseTo(scores[1][i], 4));
  }, 60_000);

  it('keeps a pinned model through a swap and frees it on release', async () => {
    const c = t.app.engine.collections.get('w');
    const r = retriever('w');
    const pin = r.pin();
    const qv = await pin.encodeQuery(c.searcher.queryTerms(QUERY), QUERY);
    const docIds = Uint32Array.from(DOCS, (d) => c.index.getDocument(d.id)!.docId);
    const swap = await r.swapModel(join(MODELS, 'sidr-b'));
    expect(swap.previous.dir).toBe(join(MODELS, 'sidr-a'));
    expect(r.pin().version).toBe(swap.version);
    const old = await pin.rerank(qv, docIds); // the old model still answers its pin
    expect(old.length).toBe(DOCS.length);
    pin.release?.();
    // Released: its model's sessions are gone (cached passages would still answer; a new query cannot).
    await expect(Promise.resolve(pin.encodeQuery(c.searcher.queryTerms('water'), 'water'))).rejects.toMatchObject({ code: 'ENCODER_RUN_FAILED' });
    const fresh = r.pin();
    const q2 = await fresh.encodeQuery(c.searcher.queryTerms(QUERY), QUERY);
    expect((await fresh.rerank(q2, docIds)).length).toBe(DOCS.length);
    fresh.release?.();
  }, 60_000);

  it('calibrates γ, proximity and the lexical term as a version of their own, reset by the next model swap', async () => {
    const r = retriever('m');
    const meta = await r.calibrate({ gamma: 2.5, proximity: { weight: 0.3, window: 8 }, lexical: 0.5 }, { note: 'test' });
    expect(meta).toMatchObject({ origin: 'calibrate', info: { gamma: 2.5, proximity: { weight: 0.3, window: 8 }, lexical: 0.5 } });
    expect(r.pin().gamma).toBe(2.5);
    expect(r.pin().proximity?.window).toBe(8);
    expect(r.pin().proximity?.weight).toBeCloseTo(0.3, 6);
    expect(r.pin().lexical).toBe(0.5);
    await r.swapModel(join(MODELS, 'sidr-b'));
    expect(r.pin().gamma).toBe(1);
    expect(r.pin().proximity).toBeUndefined();
    expect(r.pin().lexical).toBeUndefined();
    await r.rollback(meta.version);
    expect(r.pin().gamma).toBe(2.5);
    expect(r.pin().proximity?.window).toBe(8);
    expect(r.pin().lexical).toBe(0.5);
    expect(r.model.dir).toBe(join(MODELS, 'sidr-a'));
  }, 60_000);
});
