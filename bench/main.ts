/**
 * `npm run bench`: every benchmark, each figure beside a baseline measured
 * in the same run. Writes bench/results/{full,quick}-STAMP.json and a chart,
 * prints a table, and after a full run refreshes the table and chart in
 * docs/benchmarks.md. `--quick` is the small smoke run CI does.
 */
import { Command } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { mongoBackend, mongoUri, stopMongo } from '../test/helpers/mongo.js';
import { EchoServer, ScriptDir } from './baselines.js';
import { chartSvg } from './chart.js';
import { compareProbes, describeCheck, probeBaselines, type QuietCheck } from './quiet-check.js';
import { countLabel, growth, type GrowthSizes } from './growth.js';
import { growthSvg } from './growth-chart.js';
import { profileServers, type Figure } from './lib.js';
import { agentCost } from './agent-cost.js';
import { compression } from './compression.js';
import { api, connections, latency, output, redaction, storeCommands, throughput, type StoreChoice } from './suites.js';

const GROUPS = ['latency', 'throughput', 'output', 'connections', 'api', 'growth'] as const;

const program = new Command('bench')
  .description('Taskgate benchmarks, each figure beside a baseline from the same run (docs/benchmarks.md)')
  .option('--quick', 'small sizes: a smoke run for CI (about two minutes)')
  .option('--only <groups>', `comma-separated subset of ${GROUPS.join(', ')}`)
  .option('--growth-sizes <sizes>', 'stored-task counts of the growth group, embedded/mongodb, e.g. 0,10000,100000/0,10000 (default: by mode)')
  .option('--no-docs', 'do not rewrite docs/benchmarks.md after a full run')
  .option('--profile-server <dir>', 'server processes write V8 CPU profiles of the throughput runs\' measured windows into DIR (read them with dist/bench/profile-summary.js)')
  .option('--connections <counts>', 'comma-separated agent counts for the connections group instead of its sizes (e.g. 19000; full: 1000,5000,19000, --quick: 200); a CPU profile of each idle window and reconnect storm with --profile-server')
  .parse();
const opts = program.opts<{ quick?: boolean; only?: string; docs: boolean; profileServer?: string; growthSizes?: string }>();
if (opts.profileServer) profileServers(opts.profileServer);
const quick = Boolean(opts.quick);
const only = new Set(opts.only ? opts.only.split(',') : GROUPS);
for (const g of only) if (!(GROUPS as readonly string[]).includes(g)) program.error(`unknown group "${g}"; use ${GROUPS.join(', ')}`);

const sizes = quick
  ? { latencyTasks: 50, throughputTasks: 200, agentCounts: [1, 4], outputBytes: 10e6, redactBytes: 10e6, compressBytes: 2e6, connections: [200], idleSeconds: 3, apiSeconds: 2 }
  : { latencyTasks: 1000, throughputTasks: 5000, agentCounts: [1, 4, 16], outputBytes: 200e6, redactBytes: 50e6, compressBytes: 16e6, connections: [1000, 5000, 19000], idleSeconds: 10, apiSeconds: 10 };

/** The growth group's sizes: quick stays well under a minute (CI runs it on every submission). */
const growthSizes: GrowthSizes = quick
  ? { embedded: [0, 20_000], mongodb: [0, 500], spawnTasks: 10, spawnSeconds: 3, readSeconds: 0.75, createSeconds: 1.5, createClients: 8, recheckEmpty: false }
  : { embedded: [0, 10_000, 100_000, 1_000_000], mongodb: [0, 10_000, 100_000], spawnTasks: 100, spawnSeconds: 60, readSeconds: 5, createSeconds: 10, createClients: 8, recheckEmpty: true };
if (opts.growthSizes) {
  const [embedded = [], mongodb = []] = opts.growthSizes.split('/').map((list) => (list ? list.split(',').map(Number) : []));
  if ( [...embedded, ...mongodb].some((n) => !Number.isInteger(n) || n < 0)) program.error(`--growth-sizes: "${opts.growthSizes}" is not EMBEDDED[/MONGODB], comma-separated counts`);
  growthSizes.embedded = embedded;
  growthSizes.mongodb = mongodb;
}

const stores: StoreChoice[] = [{ name: 'sqlite', uri: async () => null }];
if (await mongoUri()) stores.push({ name: 'mongodb', uri: mongoUri });
else console.warn('!!! no MongoDB-wire server (.cache/ferretdb-test or TASKGATE_TEST_MONGODB_URI): MongoDB figures skipped');
/** What "mongodb" is in this run: FerretDB's backend, or `external` (TASKGATE_TEST_MONGODB_URI). */
const mongoKind = await mongoBackend();
if (mongoKind) console.warn(`MongoDB figures on ${mongoKind === 'external' ? 'TASKGATE_TEST_MONGODB_URI' : `FerretDB v1.24, ${mongoKind} backend`}`);

// One size of the connections group (a full run at 19,000 agents alone takes minutes).
const connectionCounts = (program.opts() as { connections?: string }).connections;
if (connectionCounts) {
  const counts = connectionCounts.split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) program.error(`--connections takes whole numbers of agents, not "${connectionCounts}"`);
  sizes.connections = counts;
}

const figures: Figure[] = [];
let samples: Record<string, number[]> = {};
const scripts = new ScriptDir();
const echo = await EchoServer.start();
const started = new Date();

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

let quietCheck: QuietCheck | null = null;
try {
  log('quiet-machine check: baselines at the start');
  const startProbe = await probeBaselines();
  if (only.has('latency')) {
    for (const store of stores) {
      // FerretDB's SQLite backend scans collections, so each task there costs
      // more as the collection grows (1,000 sequential tasks took over 40
      // minutes): fewer tasks on it in a full run. Its PostgreSQL backend
      // (the default) and a real MongoDB get them all.
      const n = store.name === 'mongodb' && mongoKind === 'sqlite' ? Math.min(sizes.latencyTasks, 300) : sizes.latencyTasks;
      log(`latency: ${n} sequential tasks on ${store.name}`);
      const r = await latency(store, n, echo, scripts);
      figures.push(...r.figures);
      samples = { ...samples, ...r.samples };
    }
    if (stores[1]) figures.push(...(await storeCommands(stores[1], quick ? 10 : 50, log)));
  }
  if (only.has('throughput')) {
    for (const agents of sizes.agentCounts) {
      log(`throughput: ${sizes.throughputTasks} tasks through ${agents} agent(s) on sqlite`);
      figures.push(...(await throughput(stores[0]!, sizes.throughputTasks, agents, scripts)));
    }
    if (stores[1]) {
      // FerretDB's SQLite backend manages a few tasks per second, its
      // PostgreSQL backend a few tens: fewer tasks there.
      const n = mongoKind === 'sqlite' ? (quick ? 40 : 500) : Math.min(sizes.throughputTasks, 1000);
      log(`throughput: ${n} tasks through 4 agents on mongodb`);
      figures.push(...(await throughput(stores[1], n, 4, scripts)));
    }
    const n = quick ? 200 : 2000;
    log(`throughput: the agent's CPU over ${n} tasks, as its own process`);
    figures.push(...(await agentCost(stores[0]!, n, scripts)));
  }
  if (only.has('output')) {
    log(`output: ${sizes.outputBytes / 1e6} MB task on sqlite; redaction of ${sizes.redactBytes / 1e6} MB`);
    figures.push(...(await output(stores[0]!, sizes.outputBytes, scripts)));
    const redacting = await redaction(sizes.redactBytes, scripts);
    figures.push(...redacting);
    log(`output: compression of ${sizes.compressBytes / 1e6} MB of ordinary logs in 64 KiB chunks`);
    figures.push(...(await compression(sizes.compressBytes, redacting[0]!.baseline!.value)));
  }
  if (only.has('connections')) {
    for (const n of sizes.connections) {
      log(`connections: ${n} simulated agents`);
      figures.push(...(await connections(n, sizes.idleSeconds)));
    }
  }
  if (only.has('api')) {
    for (const store of stores) {
      log(`api: 64 clients for ${sizes.apiSeconds} s per call on ${store.name}`);
      figures.push(...(await api(store, 64, sizes.apiSeconds, echo)));
    }
  }
  if (only.has('growth')) {
    // FerretDB v1 scans a collection for every query but by _id, and a
    // sorted or $in query fetches every document into FerretDB (docs/scaling.md):
    // a ListTasks page at 10,000 tasks takes tens of seconds there, at 100,000
    // minutes. So 100,000 only on a real MongoDB (TASKGATE_TEST_MONGODB_URI),
    // 10,000 on FerretDB's PostgreSQL backend, 2,000 on its SQLite one.
    const cap = opts.growthSizes || mongoKind === 'external' ? Infinity : mongoKind === 'sqlite' ? 2000 : 10_000;
    const sized = { ...growthSizes, mongodb: growthSizes.mongodb.filter((n) => n <= cap) };
    log(`growth: embedded ${sized.embedded.map(countLabel).join(' / ')}${stores[1] ? `, mongodb ${sized.mongodb.map(countLabel).join(' / ')}` : ''} stored tasks`);
    figures.push(...(await growth(stores, sized, log)));
  }
  log('quiet-machine check: baselines at the end');
  quietCheck = compareProbes(startProbe, await probeBaselines());
} finally {
  await echo.stop();
  scripts.close();
  await stopMongo();
}

const machine = {
  cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  kernel: release(),
  node: process.version,
};
const mode = quick ? 'quick' : 'full';
const stamp = started.toISOString().replace(/[:.]/g, '-');
const resultsDir = join(import.meta.dirname, '..', '..', 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const result = { mode, started: started.toISOString(), seconds: Math.round((Date.now() - started.getTime()) / 1000), machine, sizes: { ...sizes, growth: growthSizes }, quietCheck, figures, samples };
const jsonPath = join(resultsDir, `${mode}-${stamp}.json`);
// Figures one per line for diffs; the raw latency samples (ms, 3 decimals) compact.
const rounded = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map((x) => Math.round(x * 1000) / 1000)]));
writeFileSync(jsonPath, `${JSON.stringify({ ...result, samples: '@samples' }, null, 1).replace('"@samples"', JSON.stringify(rounded))}\n`);
const caption = `${mode} run ${started.toISOString().slice(0, 16)}Z on ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}; dashed: baselines`;
const svg = chartSvg(figures, samples, caption);
if (figures.some((f) => f.group !== 'growth')) writeFileSync(join(resultsDir, `${mode}-${stamp}.svg`), svg);
const growthFigures = figures.filter((f) => f.group === 'growth');
const growthChart = growthSvg(growthFigures, `${mode} run ${started.toISOString().slice(0, 16)}Z on ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}`);
if (growthFigures.length) writeFileSync(join(resultsDir, `${mode}-${stamp}-growth.svg`), growthChart);

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** The results as a Markdown table: figure, value, baseline, ratio. */
function markdownTable(rows: Figure[]): string {
  const lines = ['| benchmark | figure | Taskgate | baseline (same run) | baseline | ratio |', '|---|---|--:|---|--:|--:|'];
  for (const f of rows) {
    lines.push(`| ${f.group} | ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.baseline?.name ?? '-'} | ${f.baseline ? `${fmt(f.baseline.value)} ${f.unit}` : '-'} | ${f.ratio === null ? '-' : `${fmt(f.ratio)}×`} |`);
  }
  return lines.join('\n');
}

/** The growth section of docs/benchmarks.md between its markers: the run, the table, the quiet-machine check, the chart. */
function growthBlock(rows: Figure[], run: string): string {
  const chart = '![latency and CreateTask/s against stored tasks, embedded store and MongoDB](benchmarks-growth.svg)';
  const quiet = quietCheck ? describeCheck(quietCheck) : 'Quiet-machine check: not run.';
  return `<!-- bench-growth:start -->\n${run}\n\n${markdownTable(rows)}\n\n${quiet}\n\n${chart}\n<!-- bench-growth:end -->`;
}

const table = `${markdownTable(figures)}\n\n${quietCheck ? describeCheck(quietCheck) : 'Quiet-machine check: not run.'}`;
console.log(table);
console.log(`\nresults: ${jsonPath}`);

/** What a full run rewrites in docs/benchmarks.md: the main table after a run of every group, the growth section after any run with growth. */
// Full runs at the standard sizes only (not --connections COUNTS).
const writesMain = !quick && opts.docs && only.size === GROUPS.length && !connectionCounts;
const writesGrowth = !quick && opts.docs && only.has('growth');
const runLine = `${started.toISOString().slice(0, 16)}Z, ${result.seconds} s, on ${machine.cpu}, ${machine.memoryGiB} GiB RAM, Linux ${machine.kernel}, Node ${machine.node} (\`${jsonPath.slice(jsonPath.indexOf('bench/results'))}\`)`;
const docsDir = join(import.meta.dirname, '..', '..', 'docs');
if ((writesMain || writesGrowth) && !quietCheck?.quiet) {
  console.log('docs/benchmarks.md left as it was: the quiet-machine check failed (see above); run again on a quieter machine');
} else if (writesMain || writesGrowth) {
  const docPath = join(docsDir, 'benchmarks.md');
  let doc = readFileSync(docPath, 'utf8');
  if (writesMain) {
    writeFileSync(join(docsDir, 'benchmarks.svg'), svg);
    const mainTable = `${markdownTable(figures.filter((f) => f.group !== 'growth'))}\n\n${quietCheck ? describeCheck(quietCheck) : 'Quiet-machine check: not run.'}`;
    doc = doc.replace(/<!-- bench:start -->[\s\S]*<!-- bench:end -->/, `<!-- bench:start -->\nLatest full run: ${runLine}.\n\n${mainTable}\n<!-- bench:end -->`);
  }
  if (writesGrowth) {
    writeFileSync(join(docsDir, 'benchmarks-growth.svg'), growthChart);
    doc = doc.replace(/<!-- bench-growth:start -->[\s\S]*<!-- bench-growth:end -->/, growthBlock(growthFigures, `Latest growth run: ${runLine}.`));
  }
  writeFileSync(docPath, doc);
  console.log(`docs/benchmarks.md${writesMain ? ', docs/benchmarks.svg' : ''}${writesGrowth ? ', docs/benchmarks-growth.svg' : ''} updated`);
}
