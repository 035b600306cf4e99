/**
 * The `metrics` plugin: a small Prometheus registry decorated as `app.metrics` (counters, gauges,
 * histograms any route can feed), HTTP request counters and latency histograms, index sizes,
 * retriever versions, event-loop delay and RSS, served as text format 0.0.4 at `GET /metrics`.
 */
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type Labels = Record<string, string | number | boolean | undefined>;

/** Latency buckets in seconds: 0.5 ms to 10 s, roughly ×2.5 apart. */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Series kept per metric; later label sets are dropped (and counted) to bound memory. */
export const MAX_SERIES_PER_METRIC = 10_000;
/** `x-request-id` values accepted from clients; anything else gets a fresh UUID. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const SEARCH_MODES = new Set(['late', 'beta', 'lexical']);

interface Series {
  labels: string;
  value: number;
  /** Histograms only: per-bucket counts (not cumulative) and the sum. */
  buckets?: Float64Array;
  sum?: number;
}

interface Metric {
  type: MetricType;
  help: string;
  buckets?: number[];
  series: Map<string, Series>;
}

function cleanName(name: string): string {
  const n = name.replace(/[^A-Za-z0-9_:]/g, '_');
  return /^[A-Za-z_:]/.test(n) ? n : `_${n}`;
}

/** Label values escaped as the text format requires: backslash, double quote, newline. */
function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Labels | undefined): string {
  if (!labels) return '';
  const parts: string[] = [];
  for (const key of Object.keys(labels).sort()) {
    const v = labels[key];
    if (v === undefined) continue;
    parts.push(`${cleanName(key).replace(/:/g, '_')}="${escapeValue(String(v))}"`);
  }
  return parts.join(',');
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * A Prometheus registry. Metrics are created on first use (`inc` → counter, `set` → gauge,
 * `observe` → histogram with latency buckets) or declared up front with `describe`.
 */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors: Array<() => void> = [];
  private dropped = 0;

  /** Declares a metric's type, help text and (histograms) bucket upper bounds. Idempotent. */
  describe(name: string, type: MetricType, help: string, buckets: number[] = LATENCY_BUCKETS_SECONDS): void {
    const n = cleanName(name);
    const m = this.metrics.get(n);
    if (m) {
      m.help = help;
      return;
    }
    this.metrics.set(n, { type, help, buckets: type === 'histogram' ? [...buckets].sort((a, b) => a - b) : undefined, series: new Map() });
  }

  private series(name: string, type: MetricType, labels: Labels | undefined): Series | undefined {
    const n = cleanName(name);
    let m = this.metrics.get(n);
    if (!m) {
      this.describe(n, type, `${n} (${type})`);
      m = this.metrics.get(n)!;
    }
    const key = labelText(labels);
    let s = m.series.get(key);
    if (!s) {
      if (m.series.size >= MAX_SERIES_PER_METRIC) {
        this.dropped++;
        return undefined;
      }
      s = { labels: key, value: 0 };
      if (m.type === 'histogram') {
        s.buckets = new Float64Array(m.buckets!.length + 1);
        s.sum = 0;
      }
      m.series.set(key, s);
    }
    return s;
  }

  /** Adds `value` (default 1) to a counter. Non-finite or negative values are ignored. */
  inc(name: string, labels?: Labels, value = 1): void {
    if (!Number.isFinite(value) || value < 0) return;
    const s = this.series(name, 'counter', labels);
    if (s) s.value += value;
  }

  /** Sets a gauge. */
  set(name: string, labels: Labels | undefined, value: number): void {
    const s = this.series(name, 'gauge', labels);
    if (s) s.value = value;
  }

  /** Records one observation in a histogram. */
  observe(name: string, labels: Labels | undefined, value: number): void {
    if (!Number.isFinite(value)) return;
    const n = cleanName(name);
    const s = this.series(n, 'histogram', labels);
    const m = this.metrics.get(n)!;
    if (!s || !s.buckets || !m.buckets) return;
    let i = 0;
    while (i < m.buckets.length && value > m.buckets[i]) i++;
    s.buckets[i]++;
    s.sum! += value;
    s.value++;
  }

  /** Removes every series of a gauge (before a collector re-fills it, e.g. dropped collections). */
  reset(name: string): void {
    this.metrics.get(cleanName(name))?.series.clear();
  }

  /** Registers a function run before each render, to refresh gauges from live state. */
  addCollector(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** The current value of a counter or gauge series (tests, health summaries). */
  get(name: string, labels?: Labels): number | undefined {
    return this.metrics.get(cleanName(name))?.series.get(labelText(labels))?.value;
  }

  /** The text exposition format 0.0.4. */
  render(): string {
    for (const fn of this.collectors) fn();
    this.set('r3serve_metrics_dropped_series_total', undefined, this.dropped);
    const out: string[] = [];
    for (const [name, m] of [...this.metrics].sort(([a], [b]) => a.localeCompare(b))) {
      if (m.series.size === 0) continue;
      out.push(`# HELP ${name} ${m.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${m.type}`);
      for (const s of m.series.values()) {
        if (m.type !== 'histogram') {
          out.push(`${name}${s.labels ? `{${s.labels}}` : ''} ${num(s.value)}`);
          continue;
        }
        const sep = s.labels ? `${s.labels},` : '';
        let cumulative = 0;
        m.buckets!.forEach((le, i) => {
          cumulative += s.buckets![i];
          out.push(`${name}_bucket{${sep}le="${num(le)}"} ${cumulative}`);
        });
        out.push(`${name}_bucket{${sep}le="+Inf"} ${s.value}`);
        out.push(`${name}_sum${s.labels ? `{${s.labels}}` : ''} ${num(s.sum!)}`);
        out.push(`${name}_count${s.labels ? `{${s.labels}}` : ''} ${s.value}`);
      }
    }
    return out.join('\n') + '\n';
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The Prometheus registry: `app.metrics.inc(name, labels, value)` and friends. */
    metrics: MetricsRegistry;
  }
}

/** The search mode of a `/search` request, for the latency histogram; read from the body. */
function searchMode(app: FastifyInstance, request: FastifyRequest): string {
  const body = request.body as { mode?: unknown; collection?: unknown } | undefined;
  if (typeof body?.mode === 'string') return SEARCH_MODES.has(body.mode) ? body.mode : 'invalid';
  const name = typeof body?.collection === 'string' ? body.collection : 'default';
  const c = app.engine.collections.has(name) ? app.engine.collections.get(name) : undefined;
  return c?.searcher.retriever ? 'late' : 'lexical';
}

/** Counters of one successful RCL step, read from its JSON answer (exported for tests). */
export function recordRclStep(reg: MetricsRegistry, request: Pick<FastifyRequest, 'body'>, payload: string): void {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(payload) as Record<string, unknown>;
  } catch {
    return;
  }
  const body = request.body as { collection?: unknown } | undefined;
  const labels = { collection: typeof body?.collection === 'string' ? body.collection : 'default' };
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  reg.inc('r3serve_rcl_steps_total', labels);
  reg.inc('r3serve_rcl_positives_total', labels, n(r.positives));
  reg.inc('r3serve_rcl_negatives_total', labels, n(r.negatives));
  reg.inc('r3serve_rcl_excluded_total', labels, n(r.excluded));
  reg.inc('r3serve_rcl_fallbacks_total', labels, n(r.fallbacks));
  reg.inc('r3serve_rcl_newly_scored_total', labels, n(r.newlyScored));
  if (typeof r.loss === 'number') reg.set('r3serve_rcl_loss', labels, r.loss);
}

function declare(reg: MetricsRegistry): void {
  reg.describe('r3serve_http_requests_total', 'counter', 'HTTP requests answered, by route pattern, method and status.');
  reg.describe('r3serve_http_request_duration_seconds', 'histogram', 'HTTP request latency by route pattern and method.');
  reg.describe('r3serve_http_requests_in_flight', 'gauge', 'HTTP requests being served.');
  reg.describe('r3serve_search_duration_seconds', 'histogram', 'POST /search latency by search mode (2xx answers only).');
  reg.describe('r3serve_collection_documents', 'gauge', 'Live documents per collection.');
  reg.describe('r3serve_collection_terms', 'gauge', 'Vocabulary size (distinct index terms) per collection.');
  reg.describe('r3serve_retriever_version', 'gauge', 'Version of the parametric retriever (θ) serving each collection.');
  reg.describe('r3serve_store_bytes', 'gauge', 'Bytes used by the LMDB environment file.');
  reg.describe('r3serve_uptime_seconds', 'gauge', 'Seconds since the engine opened.');
  reg.describe('process_resident_memory_bytes', 'gauge', 'Resident set size in bytes.');
  reg.describe('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use, in bytes.');
  reg.describe('process_cpu_seconds_total', 'counter', 'User and system CPU time spent, in seconds.');
  reg.describe('nodejs_eventloop_delay_seconds', 'gauge', 'Event-loop delay since the previous scrape (perf_hooks monitorEventLoopDelay), by quantile.');
  reg.describe('nodejs_eventloop_delay_max_seconds', 'gauge', 'Largest event-loop delay since the previous scrape.');
  reg.describe('r3serve_rcl_steps_total', 'counter', 'Published RCL steps (POST /rcl/step answered 200).');
  reg.describe('r3serve_rcl_positives_total', 'counter', 'Positive documents used by RCL steps.');
  reg.describe('r3serve_rcl_negatives_total', 'counter', 'Negative documents used by RCL steps.');
  reg.describe('r3serve_rcl_excluded_total', 'counter', 'Documents excluded from RCL steps by the thresholds.');
  reg.describe('r3serve_rcl_fallbacks_total', 'counter', 'RCL queries that fell back to offline pools.');
  reg.describe('r3serve_rcl_newly_scored_total', 'counter', 'Documents scored by an environment for the first time.');
  reg.describe('r3serve_rcl_loss', 'gauge', 'Loss of the latest RCL step.');
  reg.describe('r3serve_metrics_dropped_series_total', 'counter', `Label sets dropped because a metric already had ${MAX_SERIES_PER_METRIC} series.`);
}

async function metricsPlugin(app: FastifyInstance): Promise<void> {
  const reg = new MetricsRegistry();
  declare(reg);
  app.decorate('metrics', reg);

  // Request ids: a well-formed `x-request-id` is kept (log correlation across services), else a UUID.
  app.setGenReqId((req) => {
    const given = req.headers['x-request-id'];
    return typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
  });

  let inFlight = 0;
  app.addHook('onRequest', async (request, reply) => {
    inFlight++;
    // 'close' fires after 'finish' and also when the client goes away first.
    reply.raw.once('close', () => inFlight--);
    void reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    // Route patterns, never raw URLs, keep the label set bounded.
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    reg.inc('r3serve_http_requests_total', { route, method: request.method, status: reply.statusCode });
    reg.observe('r3serve_http_request_duration_seconds', { route, method: request.method }, seconds);
    if (route === '/search' && reply.statusCode < 300) reg.observe('r3serve_search_duration_seconds', { mode: searchMode(app, request) }, seconds);
  });

  // RCL counters from each `POST /rcl/step` answer (the route stays unaware of metrics).
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.routeOptions.url === '/rcl/step' && reply.statusCode === 200 && typeof payload === 'string') recordRclStep(reg, request, payload);
    return payload;
  });

  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const startCpu = process.cpuUsage();
  reg.addCollector(() => {
    const e = app.engine;
    reg.set('r3serve_http_requests_in_flight', undefined, inFlight);
    for (const name of ['r3serve_collection_documents', 'r3serve_collection_terms', 'r3serve_retriever_version']) reg.reset(name);
    for (const c of e.collections.list()) {
      reg.set('r3serve_collection_documents', { collection: c.name }, c.index.liveCount);
      reg.set('r3serve_collection_terms', { collection: c.name }, c.index.vocabularySize);
      const retriever = c.searcher.retriever;
      if (retriever) reg.set('r3serve_retriever_version', { collection: c.name }, retriever.version);
    }
    reg.set('r3serve_store_bytes', undefined, e.store.sizeBytes());
    reg.set('r3serve_uptime_seconds', undefined, (Date.now() - e.startedAt) / 1000);
    reg.set('process_resident_memory_bytes', undefined, process.memoryUsage.rss());
    reg.set('nodejs_heap_used_bytes', undefined, process.memoryUsage().heapUsed);
    const cpu = process.cpuUsage(startCpu);
    reg.set('process_cpu_seconds_total', undefined, (cpu.user + cpu.system) / 1e6);
    // Quantiles over the window since the previous scrape, as prom-client does; ns → s.
    for (const q of [0.5, 0.9, 0.99]) reg.set('nodejs_eventloop_delay_seconds', { quantile: q }, loopDelay.count > 0 ? loopDelay.percentile(q * 100) / 1e9 : 0);
    reg.set('nodejs_eventloop_delay_max_seconds', undefined, loopDelay.count > 0 ? loopDelay.max / 1e9 : 0);
    loopDelay.reset();
  });
  app.addHook('onClose', async () => loopDelay.disable());

  app.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(reg.render()),
  );
}

export default fp(metricsPlugin, { name: 'metrics', dependencies: ['engine'] });
