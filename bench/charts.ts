/**
 * Renders SVG charts from the JSON results under `bench/results/` with a tiny hand-written SVG
 * generator (no dependencies): latency vs corpus size (scale-*), quality vs latency (peers-*),
 * HTTP throughput (http-*) and training curves (rcl-*). `npx tsx bench/charts.ts [--results DIR]`.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RESULTS_DIR } from './lib/bench-env.ts';
import { parseFlags } from './lib/harness.ts';

const flags = parseFlags(process.argv.slice(2));
const dir = flags.results ?? RESULTS_DIR;

// ---- a tiny SVG generator --------------------------------------------------------------------

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const W = 720;
const H = 440;
const M = { top: 48, right: 170, bottom: 56, left: 70 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(3));
}

interface Axis {
  min: number;
  max: number;
  log: boolean;
  label: string;
}

function scale(axis: Axis, from: number, to: number): (v: number) => number {
  const f = axis.log ? Math.log10 : (v: number) => v;
  const lo = f(axis.min);
  const hi = f(axis.max);
  return (v) => from + ((f(v) - lo) / (hi - lo || 1)) * (to - from);
}

function ticks(axis: Axis): number[] {
  if (axis.log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(axis.min)); e <= Math.ceil(Math.log10(axis.max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (v >= axis.min * 0.999 && v <= axis.max * 1.001) out.push(v);
      }
    }
    return out;
  }
  const span = axis.max - axis.min || 1;
  const step0 = 10 ** Math.floor(Math.log10(span / 5));
  const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= 7) ?? step0 * 10;
  const out: number[] = [];
  for (let v = Math.ceil(axis.min / step) * step; v <= axis.max + 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function range(values: number[], log: boolean, pad = 0.05): { min: number; max: number } {
  const v = values.filter((x) => Number.isFinite(x) && (!log || x > 0));
  if (v.length === 0) return { min: log ? 1 : 0, max: log ? 10 : 1 };
  let min = Math.min(...v);
  let max = Math.max(...v);
  if (log) return { min: 10 ** Math.floor(Math.log10(min)), max: 10 ** Math.ceil(Math.log10(max)) };
  if (min === max) {
    min -= 1;
    max += 1;
  }
  const p = (max - min) * pad;
  return { min: min >= 0 && min - p < 0 ? 0 : min - p, max: max + p };
}

function frame(title: string, x: Axis, y: Axis, body: string, legend: Array<{ name: string; color: string; dash?: boolean }>, note?: string): string {
  const sx = scale(x, M.left, W - M.right);
  const sy = scale(y, H - M.bottom, M.top);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2 - M.right / 2 + M.left / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (const t of ticks(x)) {
    const px = sx(t);
    parts.push(`<line x1="${px}" y1="${M.top}" x2="${px}" y2="${H - M.bottom}" stroke="#eee"/>`);
    parts.push(`<text x="${px}" y="${H - M.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(y)) {
    const py = sy(t);
    parts.push(`<line x1="${M.left}" y1="${py}" x2="${W - M.right}" y2="${py}" stroke="#eee"/>`);
    parts.push(`<text x="${M.left - 6}" y="${py + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 14}" text-anchor="middle">${esc(x.label)}${x.log ? ' (log)' : ''}</text>`);
  parts.push(`<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(y.label)}${y.log ? ' (log)' : ''}</text>`);
  parts.push(body);
  legend.forEach((l, i) => {
    const ly = M.top + 8 + i * 18;
    parts.push(`<line x1="${W - M.right + 12}" y1="${ly}" x2="${W - M.right + 34}" y2="${ly}" stroke="${l.color}" stroke-width="2.5"${l.dash ? ' stroke-dasharray="5 3"' : ''}/>`);
    parts.push(`<text x="${W - M.right + 40}" y="${ly + 4}">${esc(l.name)}</text>`);
  });
  if (note) parts.push(`<text x="${M.left}" y="${M.top - 8}" font-size="10" fill="#666">${esc(note)}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

interface Series {
  name: string;
  points: Array<[number, number]>;
  dash?: boolean;
  color?: string;
}

/** Lines with markers. */
export function lineChart(opts: {
  title: string;
  x: Omit<Axis, 'min' | 'max'>;
  y: Omit<Axis, 'min' | 'max'>;
  series: Series[];
  note?: string;
  /** Horizontal reference lines (targets). */
  marks?: Array<{ y: number; label: string }>;
}): string {
  const xs = opts.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = [...opts.series.flatMap((s) => s.points.map((p) => p[1])), ...(opts.marks ?? []).map((m) => m.y)];
  const x: Axis = { ...opts.x, ...range(xs, opts.x.log, 0.02) };
  const y: Axis = { ...opts.y, ...range(ys, opts.y.log) };
  const sx = scale(x, M.left, W - M.right);
  const sy = scale(y, H - M.bottom, M.top);
  const body = opts.series
    .map((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length];
      const pts = s.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b) && (!x.log || a > 0) && (!y.log || b > 0));
      const path = pts.map(([a, b], j) => `${j ? 'L' : 'M'}${sx(a).toFixed(1)},${sy(b).toFixed(1)}`).join(' ');
      const marks = pts.length <= 40 ? pts.map(([a, b]) => `<circle cx="${sx(a).toFixed(1)}" cy="${sy(b).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${fmt(a)}, ${fmt(b)}`)}</title></circle>`).join('') : '';
      return `<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>${marks}`;
    })
    .concat(
      (opts.marks ?? []).map(
        (m, i) =>
          `<line x1="${M.left}" y1="${sy(m.y).toFixed(1)}" x2="${W - M.right}" y2="${sy(m.y).toFixed(1)}" stroke="#555" stroke-dasharray="2 4"/>` +
          // Alternate sides (and above/below) so that close targets stay legible.
          `<text x="${i % 2 ? M.left + 4 : W - M.right - 4}" y="${(sy(m.y) + (i % 2 ? 12 : -4)).toFixed(1)}" text-anchor="${i % 2 ? 'start' : 'end'}" font-size="10" fill="#555">${esc(m.label)}</text>`,
      ),
    )
    .join('\n');
  return frame(opts.title, x, y, body, opts.series.map((s, i) => ({ name: s.name, color: s.color ?? PALETTE[i % PALETTE.length], dash: s.dash })), opts.note);
}

/** Labelled points. */
export function scatterChart(opts: { title: string; x: Omit<Axis, 'min' | 'max'>; y: Omit<Axis, 'min' | 'max'>; points: Array<{ x: number; y: number; label: string }>; note?: string }): string {
  const pts = opts.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const x: Axis = { ...opts.x, ...range(pts.map((p) => p.x), opts.x.log) };
  const y: Axis = { ...opts.y, ...range(pts.map((p) => p.y), opts.y.log, 0.15) };
  const sx = scale(x, M.left, W - M.right);
  const sy = scale(y, H - M.bottom, M.top);
  const body = pts
    .map((p, i) => {
      const color = PALETTE[i % PALETTE.length];
      const cx = sx(p.x);
      const cy = sy(p.y);
      return `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="5" fill="${color}"><title>${esc(`${p.label}: ${fmt(p.x)}, ${fmt(p.y)}`)}</title></circle>` +
        `<text x="${(cx + 7).toFixed(1)}" y="${(cy - 6).toFixed(1)}" font-size="11" fill="${color}">${esc(p.label)}</text>`;
    })
    .join('\n');
  return frame(opts.title, x, y, body, pts.map((p, i) => ({ name: p.label, color: PALETTE[i % PALETTE.length] })), opts.note);
}

/** Horizontal bars. */
export function barChart(opts: { title: string; label: string; bars: Array<{ name: string; value: number }>; note?: string }): string {
  const bars = opts.bars.filter((b) => Number.isFinite(b.value));
  const max = Math.max(1, ...bars.map((b) => b.value));
  const left = 260;
  const rowH = 24;
  const h = M.top + bars.length * rowH + M.bottom;
  const width = W - left - 60;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${h}" fill="white"/>`];
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  if (opts.note) parts.push(`<text x="${left}" y="${M.top - 8}" font-size="10" fill="#666">${esc(opts.note)}</text>`);
  bars.forEach((b, i) => {
    const y = M.top + i * rowH;
    const w = (b.value / max) * width;
    parts.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(b.name)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${PALETTE[i % PALETTE.length]}"/>`);
    parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + 15}">${fmt(b.value)}</text>`);
  });
  parts.push(`<text x="${left + width / 2}" y="${h - 16}" text-anchor="middle">${esc(opts.label)}</text>`, '</svg>');
  return parts.join('\n');
}

// ---- reading results -------------------------------------------------------------------------

/** The newest result of a bench: `<bench>-*.json` with the latest recorded `date` (file mtime as a fallback). */
function latest(prefix: string): { path: string; json: any } | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.startsWith(`${prefix}-`) && f.endsWith('.json'));
  } catch {
    return undefined;
  }
  let best: { path: string; json: any; at: number } | undefined;
  for (const f of files) {
    const path = join(dir, f);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    const at = Date.parse(json.date ?? '') || statSync(path).mtimeMs;
    if (!best || at > best.at) best = { path, json, at };
  }
  return best && { path: best.path, json: best.json };
}

function noteOf(j: { date?: string; commit?: string; node?: string; machine?: string; loadavg_start?: number }): string {
  return [j.date?.slice(0, 10), j.commit, j.node, j.machine, j.loadavg_start !== undefined ? `load ${j.loadavg_start}` : undefined].filter(Boolean).join(' · ');
}

const written: string[] = [];
function write(name: string, svg: string): void {
  const path = join(dir, name);
  writeFileSync(path, `${svg}\n`);
  written.push(path);
}

function scaleCharts(): void {
  const r = latest('scale');
  if (!r) return;
  const rows: Array<Record<string, any>> = r.json.sizes ?? [];
  const series: Series[] = [];
  ['lexical', 'beta', 'late'].forEach((mode, i) => {
    if (!rows.some((row) => row[mode]?.available)) return;
    const color = PALETTE[i];
    series.push({ name: `${mode} p50`, color, points: rows.filter((row) => row[mode]?.available).map((row) => [row.docs, row[mode].p50_ms]) });
    series.push({ name: `${mode} p99`, color, points: rows.filter((row) => row[mode]?.available).map((row) => [row.docs, row[mode].p99_ms]), dash: true });
  });
  write('scale-latency.svg', lineChart({ title: 'r3serve /search latency vs corpus size', x: { label: 'passages', log: true }, y: { label: 'latency, ms', log: true }, series, note: noteOf(r.json), marks: [{ y: 30, label: 'target: late p50 ≤ 30 ms at 1M' }] }));
  write(
    'scale-ingest-memory.svg',
    lineChart({
      title: 'r3serve ingest rate, RSS and disk vs corpus size',
      x: { label: 'passages', log: true },
      y: { label: 'docs/s  ·  MiB', log: true },
      series: [
        { name: 'ingest docs/s', points: rows.map((row) => [row.docs, row.ingest_docs_per_s]) },
        { name: 'RSS MiB', points: rows.map((row) => [row.docs, row.rss_mib]) },
        { name: 'disk MiB', points: rows.map((row) => [row.docs, row.disk_mib]) },
      ],
      marks: [
        { y: 5000, label: 'target ingest ≥ 5,000 docs/s' },
        { y: 4096, label: 'target RSS ≤ 4 GiB' },
      ],
      note: noteOf(r.json),
    }),
  );
}

function peersChart(): void {
  const r = latest('peers');
  if (!r) return;
  const points = (r.json.systems as Array<Record<string, any>>)
    .filter((s) => s.available && (s.path === 'direct' || s.path === 'sql'))
    .map((s) => ({ x: s.p50_ms, y: s['ndcg@10'], label: s.system }));
  write(
    'peers-quality-latency.svg',
    scatterChart({ title: `Quality vs latency on ${r.json.data} (in process, one query at a time)`, x: { label: `query p50, ms (k = ${r.json.latency_k})`, log: true }, y: { label: 'nDCG@10', log: false }, points, note: noteOf(r.json) }),
  );
}

function httpChart(): void {
  const r = latest('http');
  if (!r) return;
  const rows = (r.json.scenarios as Array<Record<string, any>>).filter((s) => s.available);
  const bars = rows.filter((s) => s.scenario.startsWith('search')).map((s) => ({ name: `${s.system} ${s.scenario.replace(/^search-?/, '') || 'search'}`, value: s.rps }));
  const ingest = rows.find((s) => s.scenario === 'documents-ingest');
  const note = `${noteOf(r.json)}${ingest ? ` · ingest ${ingest.docs_per_s} docs/s` : ''}`;
  write('http-throughput.svg', barChart({ title: `/search requests/s over HTTP, ${r.json.connections} connections, ${r.json.data}`, label: 'requests/s (autocannon); peers behind a thin fastify wrapper', bars, note }));
}

/** Every array of objects with a numeric `step` (or `epoch`), anywhere in the document. */
function curvesIn(value: unknown, path = ''): Array<{ path: string; rows: Array<Record<string, number>>; x: string }> {
  const out: Array<{ path: string; rows: Array<Record<string, number>>; x: string }> = [];
  if (Array.isArray(value)) {
    const objs = value.filter((v) => v && typeof v === 'object' && !Array.isArray(v)) as Array<Record<string, number>>;
    const x = ['step', 'epoch'].find((k) => objs.length > 1 && objs.every((o) => typeof o[k] === 'number'));
    if (x) out.push({ path, rows: objs, x });
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...curvesIn(v, path ? `${path}.${k}` : k));
  }
  return out;
}

function trainingCharts(): void {
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => /^rcl-.*\.json$/.test(f));
  } catch {
    return;
  }
  for (const f of files) {
    const json = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    for (const curve of curvesIn(json)) {
      const keys = [...new Set(curve.rows.flatMap((row) => Object.keys(row)))].filter((k) => k !== curve.x && curve.rows.some((row) => typeof row[k] === 'number'));
      for (const key of keys) {
        const points = curve.rows.filter((row) => typeof row[key] === 'number').map((row) => [row[curve.x], row[key]] as [number, number]);
        if (points.length < 2) continue;
        const base = f.replace(/\.json$/, '');
        write(
          `${base}-${curve.path.replace(/\W+/g, '_')}-${key.replace(/\W+/g, '_')}.svg`,
          lineChart({ title: `RCL training: ${key} (${json.data ?? base})`, x: { label: curve.x, log: false }, y: { label: key, log: false }, series: [{ name: key, points }], note: noteOf(json) }),
        );
      }
    }
  }
}

scaleCharts();
peersChart();
httpChart();
trainingCharts();
console.error(written.length ? `[charts] wrote\n${written.join('\n')}` : `[charts] no result files under ${dir}`);
console.log(JSON.stringify({ bench: 'charts', written: written.map((p) => p.slice(p.lastIndexOf('/') + 1)) }));
