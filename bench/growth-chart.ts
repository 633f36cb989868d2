/**
 * The growth benchmark's chart (docs/benchmarks-growth.svg), a
 * self-contained SVG as bench/chart.ts draws: left, latencies (ms, log)
 * against stored tasks; right, CreateTask/s against stored tasks; both x
 * axes log, with the empty store one decade left of the smallest size.
 * Solid lines are the embedded store, dashed ones MongoDB.
 */
import type { Figure } from './lib.js';

const W = 760;
const H = 440;
const PAD = { left: 64, right: 20, top: 40, bottom: 50 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];

/** The latency figures drawn, by metric name (bench/growth.ts METRICS). */
const LATENCIES = ['ready → spawned p50', 'ListTasks first page p50, admin', 'ListTasks first page p50, member (sees 1/3)', 'GetTask p50', 'CreateTask p99'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Points (stored tasks, value) of one metric on one store, the empty store (from the baselines) first. */
type Series = { store: string; metric: string; points: [number, number][] };

/** The growth figures as series: one per store and metric, sorted by stored tasks. */
function seriesOf(figures: Figure[], metrics: readonly string[]): Series[] {
  const byKey = new Map<string, Series>();
  for (const f of figures) {
    const metric = f.params?.metric;
    const stored = f.params?.stored;
    if (f.group !== 'growth' || typeof metric !== 'string' || typeof stored !== 'number' || !metrics.includes(metric)) continue;
    const store = String(f.params?.store);
    const key = `${store} ${metric}`;
    let s = byKey.get(key);
    if (!s) {
      s = { store, metric, points: f.baseline ? [[0, f.baseline.value]] : [] };
      byKey.set(key, s);
    }
    s.points.push([stored, f.value]);
  }
  for (const s of byKey.values()) s.points.sort((a, b) => a[0] - b[0]);
  return [...byKey.values()];
}

/** One panel: `series` on a log x axis of stored tasks, y log (latencies) or linear from 0 (rates). */
function panel(x0: number, title: string, unit: string, series: Series[], logY: boolean): string {
  const xs = series.flatMap((s) => s.points.map(([n]) => n)).filter((n) => n > 0);
  const ys = series.flatMap((s) => s.points.map(([, v]) => v)).filter((v) => v > 0);
  if (!xs.length || !ys.length) return '';
  const xLo = Math.floor(Math.log10(Math.min(...xs))) - 1; // the empty store sits here
  const xHi = Math.ceil(Math.log10(Math.max(...xs)));
  const yLo = logY ? Math.floor(Math.log10(Math.min(...ys))) : 0;
  const yHi = logY ? Math.ceil(Math.log10(Math.max(...ys))) : Math.max(...ys) * 1.1;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const px = (n: number): number => x0 + PAD.left + (((n > 0 ? Math.log10(n) : xLo) - xLo) / (xHi - xLo || 1)) * plotW;
  const py = (v: number): number => PAD.top + (1 - ((logY ? Math.log10(Math.max(v, 10 ** yLo)) : v) - yLo) / (yHi - yLo || 1)) * plotH;
  const parts: string[] = [`<text x="${x0 + W / 2}" y="22" text-anchor="middle" font-weight="bold">${esc(title)}</text>`];
  for (let d = xLo; d <= xHi; d++) {
    const n = d === xLo ? 0 : 10 ** d;
    const label = n === 0 ? 'empty' : n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n);
    parts.push(`<line x1="${px(n)}" y1="${py(logY ? 10 ** yLo : 0)}" x2="${px(n)}" y2="${PAD.top}" stroke="#eee"/>`);
    parts.push(`<text x="${px(n)}" y="${H - PAD.bottom + 16}" text-anchor="middle" font-size="11">${label}</text>`);
  }
  const ticks = logY ? Array.from({ length: yHi - yLo + 1 }, (_, k) => 10 ** (yLo + k)) : [0, 1, 2, 3, 4].map((k) => (yHi / 4) * k);
  for (const v of ticks) {
    parts.push(`<line x1="${x0 + PAD.left}" y1="${py(v)}" x2="${x0 + W - PAD.right}" y2="${py(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + PAD.left - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11">${v >= 1 ? Math.round(v) : v.toFixed(2)}</text>`);
  }
  const metrics = [...new Set(series.map((s) => s.metric))];
  series.forEach((s) => {
    const color = COLORS[metrics.indexOf(s.metric) % COLORS.length]!;
    const dashed = s.store === 'sqlite' ? '' : ' stroke-dasharray="6,4"';
    const points = s.points.map(([n, v]) => `${px(n).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dashed} points="${points}"/>`);
    for (const [n, v] of s.points) parts.push(`<circle cx="${px(n).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="${color}"/>`);
  });
  metrics.forEach((m, i) => {
    parts.push(`<text x="${x0 + PAD.left + 8}" y="${PAD.top + 14 + i * 15}" font-size="12" fill="${COLORS[i % COLORS.length]}">${esc(m)}</text>`);
  });
  parts.push(`<text x="${x0 + W / 2}" y="${H - 12}" text-anchor="middle" font-size="12">stored finished tasks (log scale); ${esc(unit)}; solid: embedded store, dashed: MongoDB (FerretDB)</text>`);
  return parts.join('\n');
}

/** The whole growth chart. */
export function growthSvg(figures: Figure[], caption: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W * 2}" height="${H + 20}" viewBox="0 0 ${W * 2} ${H + 20}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(0, 'Latency against stored tasks (ms, log)', 'ms', seriesOf(figures, LATENCIES), true),
    panel(W, 'CreateTask/s against stored tasks (8 clients)', 'calls/s', seriesOf(figures, ['CreateTask/s']), false),
    `<text x="${W}" y="${H + 12}" text-anchor="middle" font-size="11" fill="#555">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
