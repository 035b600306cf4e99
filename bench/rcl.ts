/**
 * RCL end to end on any data folder: loads the corpus, splits queries into train and test,
 * evaluates late search before, trains through `POST /rcl/offline` and `POST /rcl/step` (the
 * server's own `contains` environment, or a `qrels` environment played by this script through
 * `/rcl/rollouts` + posted scores), evaluates after, and proves the index unchanged.
 *
 *   npx tsx bench/rcl.ts --data <folder> [--env contains|qrels] [--epochs N] [--split article|hash|train]
 *                        [--batch 32] [--lr 0.002] [--seed 7] [--limit-train N] [--limit-test N] [--curve-every N]
 *                        [--out file] [--calibrate false] [--proximity false] [--lexical false] [--calibrate-first true] [--lr-decay linear]
 *                        [--held-out-every 10]
 * A tenth of the training queries (by hash; under `--split article`, the queries of a tenth of the
 * training articles; `--held-out-every N` for one in N) is held out of the steps and fits the serving mix
 * (γ, the lexical term unless `--lexical false`, term proximity unless `--proximity false`) through `POST /rcl/calibrate`: once before
 * training (reported as `before_calibrated`, then rolled back unless `--calibrate-first true`,
 * which trains under that mix), and after it, γ alone (`after_gamma_only`) and then the whole mix
 * (`after`).
 * `--seed` draws the order in which training queries are batched (each epoch reshuffles).
 * `--lr-decay linear` lowers the step's learning rate linearly from `--lr` (else 2e-3) to 0 over the run.
 */
import { writeFileSync } from 'node:fs';
import { indexFingerprint } from '../src/index/fingerprint.ts';
import { createRng } from '../src/rcl/rng.ts';
import { readCorpus, readQrels, readQueries, type EvalQuery, type Qrels } from './lib/dataset.ts';
import { evaluate, round4 } from './lib/evaluate.ts';
import { ingestCorpus, openHarness, parseFlags } from './lib/harness.ts';

const flags = parseFlags(process.argv.slice(2));
if (!flags.data) {
  console.error('usage: npx tsx bench/rcl.ts --data <folder> [--env contains|qrels] [--epochs N] [--split article|hash|train]');
  process.exit(2);
}
const dir = flags.data;
const epochs = Number(flags.epochs ?? 1);
const batchSize = Number(flags.batch ?? 32);
const lr = flags.lr ? Number(flags.lr) : undefined;
const seed = Number(flags.seed ?? 7);
// `--proximity false`: calibration fits γ only (proximity stays off).
const fitProximity = flags.proximity !== 'false';
// `--lexical false`: calibration leaves the lexical term off.
const fitLexical = flags.lexical !== 'false';
// `--calibrate-first true`: training starts from the mix fitted before it (and trains under it).
const calibrateFirst = flags['calibrate-first'] === 'true';

/** The fitted settings of a `POST /rcl/calibrate` answer, for the summary. */
function calibrationSummary(c: { gamma: number; expansionScale?: number; proximity: unknown; lexical: number; mixCheck?: unknown; queries: number; mrrBefore: number; mrrAfter: number }): Record<string, unknown> {
  return { gamma: c.gamma, expansion_scale: c.expansionScale, lexical: c.lexical, proximity: c.proximity, mix_check: c.mixCheck, queries: c.queries, mrr_before: c.mrrBefore, mrr_after: c.mrrAfter };
}
const lrDecay = flags['lr-decay'] === 'linear';
// `--held-out-every N`: one training query (under `--split article`, one training article) in N is held out for calibration.
const heldOutEvery = Number(flags['held-out-every'] ?? 10);
const curveEvery = Number(flags['curve-every'] ?? 0);

/** FNV-1a, for the `hash` split. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

async function splitQueries(): Promise<{ train: EvalQuery[]; test: EvalQuery[]; trainQrels: Qrels; testQrels: Qrels; split: string; articleOf?: (q: EvalQuery) => string }> {
  const testQueries = await readQueries(dir, 'test');
  const testQrels = await readQrels(dir, 'test');
  const trainQueries = await readQueries(dir, 'train').catch(() => undefined);
  const split = flags.split ?? (trainQueries ? 'train' : 'article');
  if (split === 'train') {
    return { train: trainQueries ?? (await readQueries(dir, 'train')), test: testQueries, trainQrels: await readQrels(dir, 'train'), testQrels, split };
  }
  let isTest: (q: EvalQuery) => boolean;
  let articleOf: ((q: EvalQuery) => string) | undefined;
  if (split === 'article') {
    // Sort article titles; every fifth article is test. A query's article is its judged passage's title.
    const titleOf = new Map<string, string>();
    for await (const d of readCorpus(dir)) titleOf.set(d.id, d.title ?? d.id);
    const titles = [...new Set(titleOf.values())].sort();
    const testTitles = new Set(titles.filter((_, i) => i % 5 === 4));
    isTest = (q) => [...(testQrels.get(q.id)?.keys() ?? [])].some((d) => testTitles.has(titleOf.get(d) ?? ''));
    articleOf = (q) => titleOf.get([...(testQrels.get(q.id)?.keys() ?? [])][0] ?? '') ?? '';
  } else {
    isTest = (q) => hash32(q.id) % 5 === 0;
  }
  return {
    train: testQueries.filter((q) => !isTest(q)),
    test: testQueries.filter(isTest),
    trainQrels: testQrels,
    testQrels,
    split,
    articleOf,
  };
}

const harness = await openHarness();
const { app } = harness;
const post = async (url: string, payload: unknown) => {
  const r = await app.inject({ method: 'POST', url, payload: payload as object });
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${r.body.slice(0, 400)}`);
  return r.json();
};
try {
  const ingest = await ingestCorpus(app, dir);
  const s = await splitQueries();
  const train = flags['limit-train'] ? s.train.slice(0, Number(flags['limit-train'])) : s.train;
  const test = flags['limit-test'] ? s.test.slice(0, Number(flags['limit-test'])) : s.test;
  const env = flags.env ?? (train.some((q) => q.answers?.length) ? 'contains' : 'qrels');
  const dbs = app.engine.store.collectionDbs('default');
  const before = indexFingerprint(dbs);
  const t0 = performance.now();
  const evalBefore = await evaluate(app, test, s.testQrels, { mode: 'late' });
  const lexical = await evaluate(app, test, s.testQrels, { mode: 'lexical' });

  // Offline stage.
  const tOffline = performance.now();
  let registered = 0;
  let dropped = 0;
  let envCalls = 0;
  for (let i = 0; i < train.length; i += 200) {
    const chunk = train.slice(i, i + 200);
    if (env === 'contains') {
      const r = await post('/rcl/offline', { queries: chunk.map((q) => ({ id: q.id, text: q.text, answers: q.answers })), environment: 'contains' });
      registered += r.registered;
      dropped += r.dropped.length;
      envCalls += r.scored;
    } else {
      const scores: Array<{ queryId: string; docId: string; score: number; label: 0 | 1 }> = [];
      for (const q of chunk) {
        const rel = s.trainQrels.get(q.id) ?? new Map();
        const hits = (await post('/search', { query: q.text, k: 100, mode: 'late', includeDocuments: false })).hits as Array<{ id: string }>;
        for (const h of hits) if (!((rel.get(h.id) ?? 0) > 0)) scores.push({ queryId: q.id, docId: h.id, score: 0, label: 0 });
        for (const [docId, grade] of rel) if (grade > 0) scores.push({ queryId: q.id, docId, score: 1, label: 1 });
      }
      const r = await post('/rcl/offline', { queries: chunk.map((q) => ({ id: q.id, text: q.text })), scores });
      registered += r.registered;
      dropped += r.dropped.length;
    }
  }
  const offlineSeconds = (performance.now() - tOffline) / 1000;

  // Online stage.
  const rng = createRng(seed);
  // A held-out tenth of the training queries (`--held-out-every`) fits the serving mix after
  // training (never trained on). Under the article split it is a tenth of the training articles, all their queries: the
  // test articles are unseen, so the mix is fitted on articles training has not seen either.
  const heldKey = s.articleOf ?? ((q: EvalQuery) => q.id);
  const calibrateOn = flags.calibrate === 'false' ? [] : train.filter((q) => hash32(`γ${heldKey(q)}`) % heldOutEvery === 0);
  const heldOut = new Set(calibrateOn.map((q) => q.id));
  const trainable = train.filter((q) => !heldOut.has(q.id));
  /** Fits the serving mix on the held-out queries (`gammaOnly`: proximity and the lexical term stay off). */
  const calibrate = (gammaOnly: boolean) =>
    post('/rcl/calibrate', {
      queries: calibrateOn.map((q) => q.id),
      environment: env === 'contains' ? 'contains' : 'client',
      ...(gammaOnly || !fitProximity ? { proximityWeights: [0] } : {}),
      ...(gammaOnly || !fitLexical ? { lexicalWeights: [0] } : {}),
    });
  // What feedback buys without training θ: the serving mix fitted on the same held-out queries,
  // evaluated, then rolled back so that training starts from the untrained version (unless --calibrate-first).
  let calibratedBefore: { metrics: Record<string, number>; settings: Record<string, unknown> } | undefined;
  if (calibrateOn.length) {
    const untrained = (await app.inject({ method: 'GET', url: '/retriever' })).json().current.version as number;
    const cal = await calibrate(false);
    calibratedBefore = { metrics: await evaluate(app, test, s.testQrels, { mode: 'late' }), settings: calibrationSummary(cal) };
    if (!calibrateFirst) await post('/retriever/rollback', { version: untrained });
  }
  const tTrain = performance.now();
  const curve: Array<{ step: number; loss: number; metric?: number }> = [];
  let steps = 0;
  const totals = { positives: 0, negatives: 0, excluded: 0, fallbacks: 0 };
  const primary = train.some((q) => q.answers?.length) ? 'answer_recall@1' : 'ndcg@10';
  const plannedSteps = epochs * Math.ceil(trainable.length / batchSize);
  let planned = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = rng.shuffle([...trainable]);
    for (let i = 0; i < order.length; i += batchSize) {
      const batch = order.slice(i, i + batchSize).map((q) => ({ id: q.id }));
      const stepLr = lrDecay ? (lr ?? 2e-3) * (1 - planned / plannedSteps) : lr;
      planned++;
      let r;
      try {
        if (env === 'contains') {
          r = await post('/rcl/step', { queries: batch, environment: 'contains', learningRate: stepLr });
        } else {
          const ro = await post('/rcl/rollouts', { queries: batch, includeDocuments: false });
          const scores = (ro.queries as Array<{ id: string; candidates: Array<{ docId: string }> }>).flatMap((q) =>
            q.candidates.map((c) => {
              const rel = (s.trainQrels.get(q.id)?.get(c.docId) ?? 0) > 0;
              return { queryId: q.id, docId: c.docId, score: rel ? 1 : 0, label: rel ? 1 : 0 };
            }),
          );
          r = await post('/rcl/step', { queries: batch, rollout: ro.rollout, scores, learningRate: stepLr });
        }
      } catch (err) {
        if (String(err).includes('RCL_NO_POOLS')) continue; // a batch of only dropped queries
        throw err;
      }
      steps++;
      envCalls += r.newlyScored;
      for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += r[key];
      const point: { step: number; loss: number; metric?: number } = { step: steps, loss: Math.round(r.loss * 1000) / 1000 };
      if (curveEvery > 0 && steps % curveEvery === 0) point.metric = (await evaluate(app, test.slice(0, 300), s.testQrels, { mode: 'late', warmup: 0 }))[primary];
      curve.push(point);
    }
  }
  const trainSeconds = (performance.now() - tTrain) / 1000;
  const evalTrained = calibrateOn.length ? await evaluate(app, test, s.testQrels, { mode: 'late' }) : undefined;
  // γ alone first (what the previous objective's figures used), then the whole mix.
  const calibrationGamma = calibrateOn.length && (fitProximity || fitLexical) ? await calibrate(true) : undefined;
  const evalGamma = calibrationGamma ? await evaluate(app, test, s.testQrels, { mode: 'late' }) : undefined;
  const calibration = calibrateOn.length ? await calibrate(false) : undefined;
  const evalAfter = await evaluate(app, test, s.testQrels, { mode: 'late' });
  const after = indexFingerprint(dbs);
  const retriever = (await app.inject({ method: 'GET', url: '/retriever' })).json();
  const summary = {
    data: dir.split('/').filter(Boolean).pop(),
    environment: env,
    split: s.split,
    docs: ingest.docs,
    train_queries: train.length,
    test_queries: test.length,
    registered,
    dropped,
    epochs,
    batch: batchSize,
    seed,
    calibrate_first: calibrateFirst || undefined,
    held_out_every: calibrateOn.length ? heldOutEvery : undefined,
    lr_decay: lrDecay ? 'linear' : undefined,
    steps,
    version: retriever.current?.version,
    environment_calls: envCalls,
    labels: totals,
    offline_seconds: Math.round(offlineSeconds * 10) / 10,
    train_seconds: Math.round(trainSeconds * 10) / 10,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
    lexical: round4(lexical),
    before: round4(evalBefore),
    after_training: evalTrained ? round4(evalTrained) : undefined,
    before_calibrated: calibratedBefore ? round4(calibratedBefore.metrics) : undefined,
    calibration_before_training: calibratedBefore?.settings,
    after_gamma_only: evalGamma ? round4(evalGamma) : undefined,
    calibration_gamma_only: calibrationGamma ? calibrationSummary(calibrationGamma) : undefined,
    calibration: calibration ? calibrationSummary(calibration) : undefined,
    after: round4(evalAfter),
    index_before: before,
    index_after: after,
    index_unchanged: before.sha256 === after.sha256 && before.bytes === after.bytes,
    curve: curve.length > 60 ? curve.filter((_, i) => i % Math.ceil(curve.length / 60) === 0 || i === curve.length - 1) : curve,
  };
  if (flags.out) writeFileSync(flags.out, JSON.stringify(summary, null, 2));
  console.log(JSON.stringify(summary));
} finally {
  await harness.close();
}
