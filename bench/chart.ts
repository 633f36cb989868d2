/**
 * The benchmark chart as a self-contained SVG (no plotting dependency):
 * left, the latency distributions as cumulative curves on a log time axis;
 * right, throughput against the number of agents beside the bare pty rate.
 */
import type { Figure } from './lib.js';

const W = 1000;
const H = 420;
const PAD = { left: 60, right: 20, top: 40, bottom: 50 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Cumulative distribution curves of latency samples (ms), x on a log scale. */
function cdfPanel(x0: number, width: number, series: Record<string, number[]>): string {
  const entries = Object.entries(series).filter(([, s]) => s.length > 0);
  const all = entries.flatMap(([, s]) => s).filter((v) => v > 0);
  if (!all.length) return '';
  const lo = Math.log10(Math.max(0.01, Math.min(...all)));
  const hi = Math.log10(Math.max(...all)) + 0.05;
  const plotW = width - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const px = (ms: number): number => x0 + PAD.left + ((Math.log10(Math.max(ms, 0.01)) - lo) / (hi - lo || 1)) * plotW;
  const py = (q: number): number => PAD.top + (1 - q) * plotH;
  const parts: string[] = [`<text x="${x0 + width / 2}" y="22" text-anchor="middle" font-weight="bold">Latency distribution (cumulative, log ms)</text>`];
  for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d;
      if (Math.log10(v) < lo || Math.log10(v) > hi) continue;
      parts.push(`<line x1="${px(v)}" y1="${py(0)}" x2="${px(v)}" y2="${py(1)}" stroke="#eee"/>`);
      parts.push(`<text x="${px(v)}" y="${py(0) + 16}" text-anchor="middle" font-size="11">${v >= 1 ? v : v.toFixed(2)}</text>`);
    }
  }
  for (const q of [0, 0.5, 0.95, 0.99, 1]) {
    parts.push(`<line x1="${px(10 ** lo)}" y1="${py(q)}" x2="${px(10 ** hi)}" y2="${py(q)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + PAD.left - 6}" y="${py(q) + 4}" text-anchor="end" font-size="11">p${Math.round(q * 100)}</text>`);
  }
  entries.forEach(([name, samples], i) => {
    const sorted = [...samples].sort((a, b) => a - b);
    const step = Math.max(1, Math.floor(sorted.length / 300));
    const points: string[] = [];
    for (let k = 0; k < sorted.length; k += step) points.push(`${px(sorted[k]!).toFixed(1)},${py((k + 1) / sorted.length).toFixed(1)}`);
    points.push(`${px(sorted[sorted.length - 1]!).toFixed(1)},${py(1).toFixed(1)}`);
    const color = COLORS[i % COLORS.length]!;
    const dashed = name.startsWith('baseline') ? ' stroke-dasharray="5,3"' : '';
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dashed} points="${points.join(' ')}"/>`);
    parts.push(`<text x="${x0 + PAD.left + 8}" y="${PAD.top + 14 + i * 15}" font-size="12" fill="${color}">${esc(name)}</text>`);
  });
  parts.push(`<text x="${x0 + width / 2}" y="${H - 10}" text-anchor="middle" font-size="12">ms (log scale)</text>`);
  return parts.join('\n');
}

/** Throughput bars per agent count, each with its bare-pty baseline. */
function throughputPanel(x0: number, width: number, figures: Figure[]): string {
  const rows = figures.filter((f) => f.group === 'throughput' && f.unit === 'tasks/s');
  if (!rows.length) return '';
  const max = Math.max(...rows.flatMap((f) => [f.value, f.baseline?.value ?? 0])) * 1.1;
  const plotW = width - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / rows.length;
  const py = (v: number): number => PAD.top + (1 - v / max) * plotH;
  const parts: string[] = [`<text x="${x0 + width / 2}" y="22" text-anchor="middle" font-weight="bold">Throughput, tasks/s (end to end) vs agents</text>`];
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    parts.push(`<line x1="${x0 + PAD.left}" y1="${py(v)}" x2="${x0 + width - PAD.right}" y2="${py(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 + PAD.left - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11">${Math.round(v)}</text>`);
  }
  rows.forEach((f, i) => {
    const x = x0 + PAD.left + i * slot + slot * 0.15;
    const bw = slot * 0.33;
    parts.push(`<rect x="${x}" y="${py(f.value)}" width="${bw}" height="${py(0) - py(f.value)}" fill="${COLORS[0]}"/>`);
    parts.push(`<text x="${x + bw / 2}" y="${py(f.value) - 4}" text-anchor="middle" font-size="11">${Math.round(f.value)}</text>`);
    if (f.baseline) {
      parts.push(`<rect x="${x + bw}" y="${py(f.baseline.value)}" width="${bw}" height="${py(0) - py(f.baseline.value)}" fill="#bbb"/>`);
      parts.push(`<text x="${x + bw * 1.5}" y="${py(f.baseline.value) - 4}" text-anchor="middle" font-size="11">${Math.round(f.baseline.value)}</text>`);
    }
    const label = `${f.params?.agents ?? '?'} agent${f.params?.agents === 1 ? '' : 's'} (${f.params?.store ?? ''})`;
    parts.push(`<text x="${x + bw}" y="${py(0) + 16}" text-anchor="middle" font-size="12">${esc(label)}</text>`);
  });
  parts.push(`<rect x="${x0 + PAD.left + 8}" y="${PAD.top}" width="10" height="10" fill="${COLORS[0]}"/><text x="${x0 + PAD.left + 22}" y="${PAD.top + 9}" font-size="12">Taskgate</text>`);
  parts.push(`<rect x="${x0 + PAD.left + 90}" y="${PAD.top}" width="10" height="10" fill="#bbb"/><text x="${x0 + PAD.left + 104}" y="${PAD.top + 9}" font-size="12">bare node-pty, same concurrency</text>`);
  return parts.join('\n');
}

/** The whole chart. */
export function chartSvg(figures: Figure[], samples: Record<string, number[]>, caption: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W * 2}" height="${H + 20}" viewBox="0 0 ${W * 2} ${H + 20}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    cdfPanel(0, W, samples),
    throughputPanel(W, W, figures),
    `<text x="${W}" y="${H + 12}" text-anchor="middle" font-size="11" fill="#555">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
