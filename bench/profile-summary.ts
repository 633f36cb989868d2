/**
 * Reads a V8 CPU profile (a server's, from `bench --profile-server DIR`) and
 * prints where its time went: total sampled time, the top functions by self
 * time, and self time by source file and by package. `--per N` divides by N
 * (the tasks the run pushed through) to give milliseconds per task.
 *
 *   node dist/bench/profile-summary.js DIR/CPU.*.cpuprofile [--per 5000] [--top 40]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
if (!file) {
  console.error('usage: profile-summary FILE.cpuprofile [--per TASKS] [--top N]');
  process.exit(2);
}
const per = flag('per', 1);
const top = flag('top', 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

// Self time per node from the samples and their time deltas (µs).
const selfUs = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

function shortUrl(url: string): string {
  if (url === '') return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

function pkgOf(url: string): string {
  if (url === '') return '(native/V8)';
  if (url.startsWith('node:')) return 'node:internal';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? `taskgate ${url.slice(dist + '/dist/'.length).split('/')[0]}/` : url;
}

const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const node of profile.nodes) {
  const us = selfUs.get(node.id) ?? 0;
  if (us === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = shortUrl(url);
  const key = `${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  byFile.set(where || functionName, (byFile.get(where || functionName) ?? 0) + us);
  byPackage.set(pkgOf(url), (byPackage.get(pkgOf(url)) ?? 0) + us);
}

function print(title: string, rows: Map<string, number>, n: number): void {
  console.log(`\n${title}`);
  const sorted = [...rows].sort((a, b) => b[1] - a[1]).slice(0, n);
  for (const [name, us] of sorted) {
    const pct = ((us / totalUs) * 100).toFixed(1).padStart(5);
    const ms = (us / 1000 / per).toFixed(per > 1 ? 3 : 0).padStart(9);
    console.log(`${pct} % ${ms} ms${per > 1 ? '/task' : ''}  ${name}`);
  }
}

const wallMs = (profile.endTime - profile.startTime) / 1000;
const idleUs = byFunction.get('(idle)') ?? 0;
console.log(`${file}: ${(wallMs / 1000).toFixed(1)} s profiled, ${((totalUs - idleUs) / 1000).toFixed(0)} ms busy (${(((totalUs - idleUs) / totalUs) * 100).toFixed(0)} %)${per > 1 ? `, ${((totalUs - idleUs) / 1000 / per).toFixed(3)} ms busy per task` : ''}`);
print('by package (self time)', byPackage, 20);
print('by file (self time)', byFile, 25);
print('by function (self time)', byFunction, top);
