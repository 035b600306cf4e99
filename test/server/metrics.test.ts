/**
 * The Prometheus registry (text format, label escaping, histograms, the series cap) and
 * `GET /metrics` of a running app: request counters by route pattern, search latency by mode,
 * index sizes, retriever versions, process gauges, the shared `app.metrics` registry, request ids.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LateRetriever } from '../../src/search/searcher.ts';
import { MAX_SERIES_PER_METRIC, MetricsRegistry, recordRclStep } from '../../src/server/plugins/metrics.ts';
import { buildTestApp, makeCorpus, type TestApp } from '../helpers/index.ts';

/** Parses the text format into `name{labels}` → value (comments skipped). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('MetricsRegistry', () => {
  it('renders counters, gauges and cumulative histogram buckets in text format 0.0.4', () => {
    const reg = new MetricsRegistry();
    reg.describe('t_requests_total', 'counter', 'Requests.');
    reg.inc('t_requests_total', { route: '/a', status: 200 });
    reg.inc('t_requests_total', { status: 200, route: '/a' }, 2); // label order does not matter
    reg.set('t_size', undefined, 42);
    for (const v of [0.0001, 0.003, 0.003, 20]) reg.observe('t_latency_seconds', { mode: 'beta' }, v);
    const text = reg.render();
    expect(text).toContain('# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n');
    expect(text).toContain('# TYPE t_latency_seconds histogram');
    const m = parse(text);
    expect(m.get('t_requests_total{route="/a",status="200"}')).toBe(3);
    expect(m.get('t_size')).toBe(42);
    expect(m.get('t_latency_seconds_bucket{mode="beta",le="0.0005"}')).toBe(1);
    expect(m.get('t_latency_seconds_bucket{mode="beta",le="0.005"}')).toBe(3);
    expect(m.get('t_latency_seconds_bucket{mode="beta",le="10"}')).toBe(3);
    expect(m.get('t_latency_seconds_bucket{mode="beta",le="+Inf"}')).toBe(4);
    expect(m.get('t_latency_seconds_count{mode="beta"}')).toBe(4);
    expect(m.get('t_latency_seconds_sum{mode="beta"}')).toBeCloseTo(20.0061, 6);
  });

  it('escapes label values, cleans names and ignores non-finite or negative increments', () => {
    const reg = new MetricsRegistry();
    reg.inc('bad name-1', { 'weird-label': 'a"b\\c\nd' });
    reg.inc('bad name-1', { 'weird-label': 'a"b\\c\nd' }, Number.NaN);
    reg.inc('bad name-1', { 'weird-label': 'a"b\\c\nd' }, -5);
    reg.observe('h_seconds', undefined, Number.POSITIVE_INFINITY);
    const text = reg.render();
    expect(text).toContain('bad_name_1{weird_label="a\\"b\\\\c\\nd"} 1\n');
    expect(text).not.toContain('h_seconds');
  });

  it('turns an RCL step answer into counters and a loss gauge', () => {
    const reg = new MetricsRegistry();
    const answer = { version: 3, loss: 0.42, positives: 5, negatives: 7, excluded: 1, fallbacks: 0, newlyScored: 12 };
    recordRclStep(reg, { body: { collection: 'books' } }, JSON.stringify(answer));
    recordRclStep(reg, { body: { collection: 'books' } }, JSON.stringify({ ...answer, loss: 0.4 }));
    recordRclStep(reg, { body: {} }, 'not json');
    const m = parse(reg.render());
    expect(m.get('r3serve_rcl_steps_total{collection="books"}')).toBe(2);
    expect(m.get('r3serve_rcl_positives_total{collection="books"}')).toBe(10);
    expect(m.get('r3serve_rcl_newly_scored_total{collection="books"}')).toBe(24);
    expect(m.get('r3serve_rcl_loss{collection="books"}')).toBe(0.4);
    expect(m.has('r3serve_rcl_steps_total{collection="default"}')).toBe(false);
  });

  it('caps the series of one metric and counts what it drops', () => {
    const reg = new MetricsRegistry();
    for (let i = 0; i <= MAX_SERIES_PER_METRIC + 4; i++) reg.inc('t_many_total', { i });
    const m = parse(reg.render());
    expect(m.get('r3serve_metrics_dropped_series_total')).toBe(5);
    expect([...m.keys()].filter((k) => k.startsWith('t_many_total')).length).toBe(MAX_SERIES_PER_METRIC);
  });
});

describe('GET /metrics', () => {
  let t: TestApp;
  let app: FastifyInstance;
  beforeAll(async () => {
    t = await buildTestApp();
    app = t.app;
    const res = await app.inject({ method: 'POST', url: '/documents', payload: { documents: makeCorpus(30) } });
    expect(res.statusCode, res.body).toBe(200);
    for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/search', payload: { query: 'cell', mode: 'lexical' } });
    for (let i = 0; i < 2; i++) await app.inject({ method: 'POST', url: '/search', payload: { query: 'cell', mode: 'beta' } });
    await app.inject({ method: 'POST', url: '/search', payload: { query: 'cell' } }); // default mode: lexical here
    await app.inject({ method: 'POST', url: '/search', payload: { query: 'cell', mode: 'nope' } });
    await app.inject({ method: 'GET', url: '/documents/d3' });
    await app.inject({ method: 'GET', url: '/documents/d7' });
    await app.inject({ method: 'GET', url: '/no-such-route-xyz-123' });
  });
  afterAll(async () => t?.close());

  async function scrape(): Promise<{ text: string; m: Map<string, number> }> {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return { text: res.body, m: parse(res.body) };
  }

  it('counts requests by route pattern, method and status, never by raw URL', async () => {
    const { text, m } = await scrape();
    expect(m.get('r3serve_http_requests_total{method="POST",route="/search",status="200"}')).toBe(6);
    expect(m.get('r3serve_http_requests_total{method="POST",route="/search",status="400"}')).toBe(1);
    expect(m.get('r3serve_http_requests_total{method="GET",route="/documents/:id",status="200"}')).toBe(2);
    expect(m.get('r3serve_http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
    expect(text).not.toContain('no-such-route');
    expect(m.get('r3serve_http_request_duration_seconds_count{method="POST",route="/search"}')).toBe(7);
  });

  it('has search latency histograms by mode', async () => {
    const { m } = await scrape();
    expect(m.get('r3serve_search_duration_seconds_count{mode="lexical"}')).toBe(4);
    expect(m.get('r3serve_search_duration_seconds_count{mode="beta"}')).toBe(2);
    expect(m.get('r3serve_search_duration_seconds_bucket{mode="beta",le="+Inf"}')).toBe(2);
  });

  it('reports index sizes, store bytes and process gauges', async () => {
    const { m } = await scrape();
    expect(m.get('r3serve_collection_documents{collection="default"}')).toBe(30);
    expect(m.get('r3serve_collection_terms{collection="default"}')).toBeGreaterThan(10);
    expect(m.get('r3serve_store_bytes')).toBeGreaterThan(0);
    expect(m.get('process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(m.get('nodejs_eventloop_delay_seconds{quantile="0.99"}')).toBeGreaterThanOrEqual(0);
    expect(m.get('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(m.has('r3serve_http_requests_in_flight')).toBe(true);
  });

  it('drops the gauges of a dropped collection', async () => {
    expect((await app.inject({ method: 'PUT', url: '/collections/gone', payload: {} })).statusCode).toBe(201);
    expect((await scrape()).m.has('r3serve_collection_documents{collection="gone"}')).toBe(true);
    expect((await app.inject({ method: 'DELETE', url: '/collections/gone' })).statusCode).toBe(204);
    expect((await scrape()).m.has('r3serve_collection_documents{collection="gone"}')).toBe(false);
  });

  it('exposes app.metrics for other code (RCL counters)', async () => {
    app.metrics.inc('r3serve_rcl_steps_total', { collection: 'default' });
    app.metrics.inc('r3serve_rcl_steps_total', { collection: 'default' }, 2);
    app.metrics.observe('r3serve_rcl_step_seconds', { collection: 'default' }, 0.2);
    const { m } = await scrape();
    expect(m.get('r3serve_rcl_steps_total{collection="default"}')).toBe(3);
    expect(m.get('r3serve_rcl_step_seconds_count{collection="default"}')).toBe(1);
  });

  it('echoes a well-formed x-request-id and replaces a malformed one', async () => {
    const kept = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'trace-42.a:b' } });
    expect(kept.headers['x-request-id']).toBe('trace-42.a:b');
    const replaced = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'bad id with spaces' } });
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const fresh = await app.inject({ method: 'GET', url: '/health' });
    expect(fresh.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(fresh.headers['x-request-id']).not.toBe(replaced.headers['x-request-id']);
  });
});

describe('GET /metrics with a parametric retriever', () => {
  it('reports the retriever version per collection', async () => {
    // Only `pin().version` is read by the metrics collector; no search runs on this fake.
    const fake = { kind: 'fake', version: 7, pin: () => ({ version: 7 }) } as unknown as LateRetriever;
    const t = await buildTestApp({}, { retrieverFactory: async () => fake });
    try {
      const m = parse((await t.app.inject({ method: 'GET', url: '/metrics' })).body);
      expect(m.get('r3serve_retriever_version{collection="default"}')).toBe(7);
    } finally {
      await t.close();
    }
  });
});
