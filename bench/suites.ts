/**
 * The five benchmarks of `npm run bench` (docs/benchmarks.md). Each returns
 * figures beside baselines measured in the same call. The Taskgate server
 * always runs as its own process; agents and API clients run in the bench
 * process, except the simulated agents of the connection benchmark, which
 * run in child processes of their own.
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Task, TaskStatus, type GetTaskLogsResponse, type WatchTaskResponse } from '../gen/taskgate/v1/task.js';
import type { TaskgateAgent } from '../agent/agent.js';
import { Redactor } from '../agent/redactor.js';
import { INFO_TYPES } from '../shared/detectors.js';
import { bidiRoundTrips, EchoServer, ptyRate, ptyRun, type ScriptDir, unaryRate } from './baselines.js';
import { rpcLayerCost } from './rpc-layer.js';
import { countsSince, MongoWireCounter } from './mongo-wire-counter.js';
import { closedLoop, epochMs, figure, nowMs, percentiles, procStat, round, ServerProcess, sleep, workers, type Figure } from './lib.js';

/** Where a server keeps its tasks. */
export interface StoreChoice {
  name: 'sqlite' | 'mongodb';
  /** A fresh database for each server; null for the embedded store. */
  uri: () => Promise<string | null>;
}

export async function createTask(server: ServerProcess, target: string, script: string): Promise<Task> {
  const { task } = await server.api.call(server.api.tasks, server.api.tasks.createTask, { target, script, message: '', type: '', timeoutSeconds: 0 });
  return task!;
}

/** Resolves with the task once it reaches a terminal status, and the epoch ms it was seen. */
function watchUntilDone(server: ServerProcess, id: string): Promise<{ task: Task; at: number }> {
  const call = server.api.tasks.watchTask({ id }, server.api.metadata) as ClientReadableStream<WatchTaskResponse>;
  return new Promise((resolve, reject) => {
    call.on('data', ({ task }: WatchTaskResponse) => {
      if (!task || ![TaskStatus.TASK_STATUS_SUCCESS, TaskStatus.TASK_STATUS_FAILURE, TaskStatus.TASK_STATUS_KILLED].includes(task.status)) return;
      resolve({ task, at: epochMs() });
      call.cancel();
    });
    call.on('error', (err: Error & { code?: number }) => {
      if (err.code !== 1) reject(err);
    });
  });
}

/** Follows a task's logs from the start: epoch ms of the first byte, total bytes, and the finished task. */
function follow(server: ServerProcess, id: string): Promise<{ firstByteAt: number; bytes: number; finished: Task; doneAt: number }> {
  const call = server.api.tasks.getTaskLogs({ id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, server.api.metadata) as ClientReadableStream<GetTaskLogsResponse>;
  let firstByteAt = -1;
  let bytes = 0;
  return new Promise((resolve, reject) => {
    call.on('data', (res: GetTaskLogsResponse) => {
      if (res.event?.$case === 'chunk') {
        if (firstByteAt < 0) firstByteAt = epochMs();
        bytes += res.event.value.data.length;
      } else if (res.event?.$case === 'finished') {
        resolve({ firstByteAt, bytes, finished: res.event.value, doneAt: epochMs() });
      }
    });
    call.on('error', reject);
  });
}

function readyAt(task: Task): number {
  const ready = task.events.find((e) => e.to === TaskStatus.TASK_STATUS_READY);
  if (!ready?.time) throw new Error(`task ${task.id} has no ready event`);
  return ready.time.getTime();
}

/** Samples as p50/p95/p99/max figures, each beside the same percentile of the baseline. */
function distribution(group: string, what: string, samples: number[], baselineName: string, baseline: number[], params: Record<string, string | number>): Figure[] {
  const s = percentiles(samples);
  const b = percentiles(baseline);
  return (['p50', 'p95', 'p99', 'max'] as const).map((p) => figure(group, `${what} ${p}`, s[p], 'ms', 'lower', { name: `${baselineName} ${p}`, value: b[p] }, params));
}

/** Ready → spawned and ready → first byte at a follower of `n` sequential tasks through one agent (after 10 untimed). */
async function timeTasks(server: ServerProcess, target: string, agent: TaskgateAgent, n: number): Promise<{ toSpawn: number[]; toFirstByte: number[] }> {
  const spawnedAt = new Map<string, number>();
  agent.on('task-start', (id: string) => spawnedAt.set(id, epochMs()));
  const toSpawn: number[] = [];
  const toFirstByte: number[] = [];
  // A few untimed tasks first: connections, statements and JIT warmed up.
  for (let i = 0; i < n + 10; i++) {
    const task = await createTask(server, target, 'echo x');
    const seen = await follow(server, task.id);
    if (seen.finished.status !== TaskStatus.TASK_STATUS_SUCCESS) throw new Error(`task ${task.id} ended ${TaskStatus[seen.finished.status]}`);
    if (i < 10) continue;
    const ready = readyAt(seen.finished);
    toSpawn.push(spawnedAt.get(task.id)! - ready);
    toFirstByte.push(seen.firstByteAt - ready);
  }
  return { toSpawn, toFirstByte };
}

/**
 * 1. Schedule-to-start: `n` sequential tasks; ready → spawn on the agent,
 * ready → first byte at a follower. Run as root, tasks run as users of their
 * own; the cost of that is measured against an agent that runs them as its
 * own user, in the same run (docs/isolation.md).
 */
export async function latency(store: StoreChoice, n: number, echo: EchoServer, scripts: ScriptDir): Promise<{ figures: Figure[]; samples: Record<string, number[]> }> {
  const server = await ServerProcess.start(await store.uri());
  try {
    await server.target('t', 'a');
    const agent = await server.agent('a');
    const isolated = agent.isolated;
    const { toSpawn, toFirstByte } = await timeTasks(server, 't', agent, n);
    await agent.stop();
    let shared: { toSpawn: number[]; toFirstByte: number[] } | null = null;
    if (isolated) {
      await server.target('t-shared', 'b');
      const plain = await server.agent('b', { isolate: false });
      shared = await timeTasks(server, 't-shared', plain, n);
      await plain.stop();
    }
    const rtt = await bidiRoundTrips(echo, n);
    const echoFile = scripts.write('echo x');
    const ptyFirstByte: number[] = [];
    for (let i = 0; i < n; i++) ptyFirstByte.push((await ptyRun(echoFile)).firstByteMs);
    const params = { tasks: n, store: store.name, isolation: isolated ? 'a uid of its own per task' : "the agent's user" };
    const floor = await storeRoundTrips(store, Math.min(n, 200));
    return {
      figures: [
        ...distribution('latency', `store write + read by key (${store.name})`, floor, 'raw grpc-js bidi round trip', rtt, params).slice(0, 1),
        ...distribution('latency', `ready → spawned on agent (${store.name})`, toSpawn, 'raw grpc-js bidi round trip', rtt, params),
        ...distribution('latency', `ready → first byte at follower (${store.name})`, toFirstByte, 'bare node-pty spawn → first byte', ptyFirstByte, params),
        ...(shared
          ? distribution('latency', `ready → spawned, a uid of its own per task (${store.name})`, toSpawn, "same, tasks as the agent's user", shared.toSpawn, params).slice(0, 3)
          : []),
      ],
      samples: {
        [`spawn-${store.name}`]: toSpawn,
        [`first-byte-${store.name}`]: toFirstByte,
        ...(shared ? { [`spawn-shared-user-${store.name}`]: shared.toSpawn } : {}),
        'baseline-rtt': rtt,
        'baseline-pty-first-byte': ptyFirstByte,
      },
    };
  } finally {
    await server.stop();
  }
}

/** How many tasks have succeeded. */
export async function countSucceeded(server: ServerProcess): Promise<number> {
  // The server's own count by status (one grouped count in the store), not
  // ListTasks pages: reading every finished task each poll would bill the
  // server for the benchmark's own reads.
  const text = await (await fetch(server.metricsUrl)).text();
  return Number(/^taskgate_tasks\{status="success"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** The floor under any store-backed step: one small write then a read by key, straight through the driver, in ms. */
export async function storeRoundTrips(store: StoreChoice, n: number): Promise<number[]> {
  const samples: number[] = [];
  const uri = await store.uri();
  if (uri) {
    const { MongoClient } = await import('mongodb');
    const client = await MongoClient.connect(uri);
    const col = client.db().collection<{ _id: string; n: number }>('bench');
    for (let i = 0; i < n + 10; i++) {
      const t0 = nowMs();
      await col.insertOne({ _id: `d${i}`, n: i });
      await col.findOne({ _id: `d${i}` });
      if (i >= 10) samples.push(nowMs() - t0);
    }
    await client.close();
    return samples;
  }
  const { default: Database } = await import('better-sqlite3');
  const dir = mkdtempSync(join(tmpdir(), 'taskgate-bench-sqlite-'));
  const db = new Database(join(dir, 'bench.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE docs (id TEXT PRIMARY KEY, n INTEGER)');
  const insert = db.prepare('INSERT INTO docs (id, n) VALUES (?, ?)');
  const select = db.prepare('SELECT * FROM docs WHERE id = ?');
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    insert.run(`d${i}`, i);
    select.get(`d${i}`);
    samples.push(nowMs() - t0);
  }
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return samples;
}

/**
 * Store commands per task on MongoDB: `n` sequential tasks of `echo x`
 * (after 5 untimed) through a server whose MongoDB connection passes a
 * counting proxy. The figure is every command the server sent during the
 * tasks, per task; the breakdown by command and collection goes in the
 * figure's parameters and to `log`. It includes the sweeper's polls (two
 * queries a second), so it is a little above what a task alone costs.
 */
export async function storeCommands(store: StoreChoice, n: number, log: (line: string) => void): Promise<Figure[]> {
  const uri = await store.uri();
  if (!uri) return [];
  const counter = await MongoWireCounter.start(uri);
  const server = await ServerProcess.start(counter.uri);
  try {
    await server.target('t', 'a');
    const agent = await server.agent('a', { isolate: false });
    const spawnedAt = new Map<string, number>();
    agent.on('task-start', (id: string) => spawnedAt.set(id, epochMs()));
    /** The commands between each task's ready event and its spawn on the agent. */
    const windows: string[][] = [];
    const run = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const task = await createTask(server, 't', 'echo x');
        const seen = await follow(server, task.id);
        if (seen.finished.status !== TaskStatus.TASK_STATUS_SUCCESS) throw new Error(`task ${task.id} ended ${TaskStatus[seen.finished.status]}`);
        windows.push(counter.between(readyAt(seen.finished), spawnedAt.get(task.id)!));
      }
    };
    await run(5);
    windows.length = 0;
    const before = counter.snapshot();
    counter.record(true);
    const t0 = nowMs();
    await run(n);
    const seconds = (nowMs() - t0) / 1000;
    counter.record(false);
    const counts = countsSince(before, counter.snapshot());
    await agent.stop();
    const total = counts.reduce((sum, [, c]) => sum + c, 0);
    const breakdown = counts.map(([k, c]) => `${k} ${(c / n).toFixed(1)}`).join(', ');
    const inWindow = windows.map((w) => w.length).sort((a, b) => a - b);
    const median = windows.find((w) => w.length === inWindow[Math.floor(inWindow.length / 2)]) ?? [];
    log(`store commands per task (${store.name}): ${(total / n).toFixed(1)} over ${n} tasks in ${seconds.toFixed(1)} s: ${breakdown}`);
    log(`store commands between ready and spawned (${store.name}): median ${median.length} (min ${inWindow[0]}, max ${inWindow.at(-1)}); the median task's: ${median.join(' → ')}`);
    return [
      figure('latency', `store commands per sequential task (${store.name})`, total / n, 'commands', 'lower', null, { tasks: n, store: store.name, breakdown }),
      figure('latency', `store commands between ready and spawned, median (${store.name})`, median.length, 'commands', 'lower', null, { tasks: n, store: store.name, sequence: median.join(' → ') }),
    ];
  } finally {
    await server.stop();
    await counter.close();
  }
}

/** 2. Throughput: `count` tasks of `true` through `agentCount` agents, created by 16 concurrent clients. */
export async function throughput(store: StoreChoice, count: number, agentCount: number, scripts: ScriptDir): Promise<Figure[]> {
  const server = await ServerProcess.start(await store.uri());
  try {
    const agents: TaskgateAgent[] = [];
    for (let i = 0; i < agentCount; i++) {
      await server.target(`t${i}`, `a${i}`);
      agents.push(await server.agent(`a${i}`));
    }
    let exited = 0;
    const allExited = new Promise<void>((resolve) => {
      for (const a of agents) a.on('task-exit', () => ++exited === count && resolve());
    });
    const calls0 = await server.storeCalls();
    server.profileMark();
    const cpu0 = procStat(server.pid).cpuSeconds;
    const t0 = nowMs();
    await workers(count, 16, async (i) => {
      await createTask(server, `t${i % agentCount}`, 'true');
    });
    await allExited;
    // The agents are done; the run ends when the server has recorded every success.
    const deadline = nowMs() + 60_000;
    let succeeded = await countSucceeded(server);
    while (succeeded < count && nowMs() < deadline) {
      await sleep(50);
      succeeded = await countSucceeded(server);
    }
    if (succeeded !== count) throw new Error(`${succeeded} of ${count} tasks succeeded`);
    const seconds = (nowMs() - t0) / 1000;
    const serverCpuMs = ((procStat(server.pid).cpuSeconds - cpu0) * 1000) / count;
    server.profileMark();
    const perTask = perTaskCalls(calls0, await server.storeCalls(), count);
    await Promise.all(agents.map((a) => a.stop()));
    const concurrency = Math.min(agentCount * 30, count);
    const baseCount = Math.min(count, 2000);
    const rate = await ptyRate(scripts.write('true'), baseCount, concurrency);
    const params = { tasks: count, agents: agentCount, store: store.name };
    return [
      figure('throughput', `tasks/s, ${agentCount} agent${agentCount > 1 ? 's' : ''} (${store.name})`, count / seconds, 'tasks/s', 'higher', { name: `bare node-pty spawn+exit of the same script, ${concurrency} at once`, value: rate }, params),
      figure('throughput', `server CPU per task, ${agentCount} agent${agentCount > 1 ? 's' : ''} (${store.name})`, serverCpuMs, 'ms', 'lower', null, params),
      figure('throughput', `store round trips per task, ${agentCount} agent${agentCount > 1 ? 's' : ''} (${store.name})`, perTask.total, 'calls', 'lower', null, {
        ...params,
        byMethod: perTask.byMethod,
      }),
    ];
  } finally {
    await server.stop();
  }
}

/**
 * Store operations per task between two counts of a server's, in total and
 * by method ("transition 2.00, getTarget 1.00, ..."), most frequent first.
 * Everything the server did meanwhile counts: its periodic sweeps and the
 * benchmark's own ListTasks polls included.
 */
function perTaskCalls(before: Map<string, number>, after: Map<string, number>, tasks: number): { total: number; byMethod: string } {
  const rows = [...after].map(([op, n]) => [op, (n - (before.get(op) ?? 0)) / tasks] as const).filter(([, n]) => n > 0);
  rows.sort((a, b) => b[1] - a[1]);
  return { total: rows.reduce((sum, [, n]) => sum + n, 0), byMethod: rows.map(([op, n]) => `${op} ${n.toFixed(2)}`).join(', ') };
}

/** A script printing `bytes` bytes of ordinary log lines. */
function printScript(bytes: number): string {
  return `yes 'level=info msg="request served" path=/api/v1/orders status=200 took_ms=12 region=eu-west-1' | head -c ${bytes}`;
}

/** 3. Output: one task printing `bytes`; pty → store and store → GetTaskLogs, plain and with redaction of every info type. */
export async function output(store: StoreChoice, bytes: number, scripts: ScriptDir): Promise<Figure[]> {
  const server = await ServerProcess.start(await store.uri());
  const params = { bytes, store: store.name };
  const figures: Figure[] = [];
  try {
    await server.target('plain', 'a');
    await server.target('redacted', 'a', { redact: ['ALL'] });
    const agent = await server.agent('a');
    const spawnedAt = new Map<string, number>();
    agent.on('task-start', (id: string) => spawnedAt.set(id, epochMs()));
    const bare = await ptyRun(scripts.write(printScript(bytes)), bytes);
    const bareRate = bare.bytes / 1e6 / (bare.doneMs / 1000);
    const baseline = { name: 'bare node-pty read of the same program', value: bareRate };
    for (const target of ['plain', 'redacted']) {
      const task = await createTask(server, target, printScript(bytes));
      const done = await watchUntilDone(server, task.id);
      if (done.task.status !== TaskStatus.TASK_STATUS_SUCCESS) throw new Error(`output task ended ${TaskStatus[done.task.status]}: ${done.task.failureReason}`);
      const stored = Number(done.task.outputBytes);
      const seconds = (done.at - spawnedAt.get(task.id)!) / 1000;
      figures.push(figure('output', `pty → store, ${target} (${store.name})`, stored / 1e6 / seconds, 'MB/s', 'higher', baseline, params));
      if (target === 'plain') {
        const t0 = nowMs();
        const read = await follow(server, task.id);
        const readSeconds = (nowMs() - t0) / 1000;
        if (read.bytes !== stored) throw new Error(`read ${read.bytes} of ${stored} stored bytes`);
        figures.push(figure('output', `store → GetTaskLogs reader (${store.name})`, read.bytes / 1e6 / readSeconds, 'MB/s', 'higher', baseline, params));
      }
    }
    await agent.stop();
  } finally {
    await server.stop();
  }
  return figures;
}

/** Redactor throughput (all info types and a secret), in 64 KiB writes, on ordinary log lines and on PII-dense ones, beside the bare pty rate. */
export async function redaction(bytes: number, scripts: ScriptDir): Promise<Figure[]> {
  const bare = await ptyRun(scripts.write(printScript(bytes)), bytes);
  const baseline = { name: 'bare node-pty read', value: bare.bytes / 1e6 / (bare.doneMs / 1000) };
  const texts = {
    'ordinary log lines': 'level=info msg="request served" path=/api/v1/orders status=200 took_ms=12 region=eu-west-1 trace=4bf92f3577b34da6a3ce929d0e0e4736\n',
    'dense PII, 3 matches per 150-byte line': 'level=info user=alice@example.com card=4111 1111 1111 1111 ip=10.1.2.3 msg="request served" path=/api/v1/orders status=200\n',
  };
  const figures: Figure[] = [];
  for (const [name, line] of Object.entries(texts)) {
    const text = Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes));
    const redactor = new Redactor({ infoTypes: [...INFO_TYPES], custom: [], secrets: ['s3cr3t-value'] });
    const t0 = nowMs();
    let out = 0;
    for (let at = 0; at < text.length; at += 65536) out += redactor.push(text.subarray(at, at + 65536)).length;
    out += redactor.flush().length;
    const seconds = (nowMs() - t0) / 1000;
    if (out === 0) throw new Error('redactor produced nothing');
    figures.push(figure('output', `redaction on the agent, ${name}`, bytes / 1e6 / seconds, 'MB/s', 'higher', baseline, { bytes }));
  }
  return figures;
}

/** Children running simulated agents; resolves when all of them report all-connected. */
class SimFleet {
  readonly children: ChildProcess[] = [];
  #waiting = 0;
  #resolve: (() => void) | null = null;
  #reject: ((err: Error) => void) | null = null;
  #stopping = false;

  constructor(mode: 'taskgate' | 'raw', address: string, count: number, tokensFile: string | null, perProcess = 4000) {
    for (let first = 0; first < count; first += perProcess) {
      const n = Math.min(perProcess, count - first);
      const args = [join(import.meta.dirname, 'sim-agents.js'), mode, address, String(first), String(n)];
      if (tokensFile) args.push(tokensFile);
      const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
      createInterface({ input: child.stdout! }).on('line', (l) => {
        if (l.startsWith('all-connected') && --this.#waiting === 0) this.#resolve?.();
      });
      child.once('exit', (code) => {
        if (!this.#stopping) this.#reject?.(new Error(`simulated agents ${first}-${first + n - 1} exited with status ${code}`));
      });
      this.children.push(child);
    }
  }

  /** Resolves the next time every child reports all its agents connected. */
  allConnected(): Promise<void> {
    this.#waiting = this.children.length;
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exitCode !== null) return;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
      }),
    );
  }
}

/** What holding `count` idle streams costs one server process, and how fast they come back after it restarts. */
interface FleetCost {
  rssKiBPerStream: number;
  idleCpuPercent: number;
  connectSeconds: number;
  reconnectSeconds: number;
  /** Of reconnectSeconds, until the new server process listened. */
  restartSeconds: number;
}

/**
 * Connects a fleet of `count` simulated streams to a server, measures its
 * memory per stream and idle CPU, then has `restart` kill and restart it and
 * times until every stream is back. `profileMark` (bench --profile-server)
 * brackets the idle window, then the storm from the new process's listening
 * on: two profiles.
 */
async function fleetCost(
  mode: 'taskgate' | 'raw',
  server: { address: string; pid: number },
  count: number,
  tokensFile: string | null,
  idleSeconds: number,
  restart: () => Promise<void>,
  profileMark: () => void = () => undefined,
): Promise<FleetCost> {
  await sleep(1000);
  const before = procStat(server.pid);
  const fleet = new SimFleet(mode, server.address, count, tokensFile);
  try {
    const t0 = nowMs();
    await fleet.allConnected();
    const connectSeconds = (nowMs() - t0) / 1000;
    await sleep(2000);
    profileMark();
    const during = procStat(server.pid);
    await sleep(idleSeconds * 1000);
    const after = procStat(server.pid);
    profileMark();
    const reconnected = fleet.allConnected();
    const t1 = nowMs();
    await restart();
    const restartSeconds = (nowMs() - t1) / 1000;
    // The new process's profile covers the storm from its listening on.
    profileMark();
    await reconnected;
    const reconnectSeconds = (nowMs() - t1) / 1000;
    profileMark();
    return {
      rssKiBPerStream: (during.rssBytes - before.rssBytes) / count / 1024,
      idleCpuPercent: ((after.cpuSeconds - during.cpuSeconds) / idleSeconds) * 100,
      connectSeconds,
      reconnectSeconds,
      restartSeconds,
    };
  } finally {
    await fleet.stop();
  }
}

/** 4. Connection scale: `count` idle agents; server RSS per agent, idle CPU, reconnect time after a server restart. */
export async function connections(count: number, idleSeconds: number): Promise<Figure[]> {
  const params = { agents: count };
  let server = await ServerProcess.start(null);
  let echo = await EchoServer.start();
  try {
    const tokens: string[] = [];
    await workers(count, 32, async (i) => {
      const { token } = await server.api.call(server.api.agents, server.api.agents.createAgentToken, { name: `sim-${i}`, ttl: undefined });
      tokens[i] = token;
    });
    const tokensFile = join(server.dir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify(tokens));
    // Restarts on the same port and data: every agent must come back.
    const taskgate = await fleetCost(
      'taskgate',
      server,
      count,
      tokensFile,
      idleSeconds,
      async () => {
        // The idle window's profile is written before the process is killed.
        if (server.env.TASKGATE_BENCH_PROFILE_DIR) await server.proc.until(/profile-hook: wrote/);
        await server.proc.crash();
        server = await ServerProcess.restart(server);
      },
      () => server.profileMark(),
    );
    // Baseline: the same number of idle streams on a raw grpc-js server.
    const raw = await fleetCost('raw', echo, count, null, idleSeconds, async () => {
      const port = Number(echo.address.split(':')[1]);
      await echo.stop();
      echo = await EchoServer.start(port);
    });
    return [
      figure('connections', `server RSS per idle agent, ${count} agents`, taskgate.rssKiBPerStream, 'KiB', 'lower', { name: 'raw grpc-js server per idle stream', value: raw.rssKiBPerStream }, params),
      figure('connections', `server CPU at idle, ${count} agents`, taskgate.idleCpuPercent, '% of a core', 'lower', { name: 'raw grpc-js server, idle streams', value: raw.idleCpuPercent }, params),
      figure('connections', `time for ${count} agents to connect`, taskgate.connectSeconds, 's', 'lower', { name: 'raw grpc-js streams', value: raw.connectSeconds }, params),
      figure('connections', `time for ${count} agents to reconnect after a server restart`, taskgate.reconnectSeconds, 's', 'lower', { name: 'raw grpc-js streams after a restart', value: raw.reconnectSeconds }, {
        ...params,
        serverRestartSeconds: round(taskgate.restartSeconds, 2),
        rawServerRestartSeconds: round(raw.restartSeconds, 2),
      }),
    ];
  } finally {
    await echo.stop();
    await server.stop();
  }
}

/**
 * The RPC layer's own CPU per unary call (call context and middleware,
 * beyond calling the method bare), beside a whole GetTask's server CPU in
 * the same run: the layer's share of a call (issue 14: at most 5 %).
 */
async function layerFigures(getTaskCpuMs: number, calls: number): Promise<Figure[]> {
  const { layerUs, bareUs } = await rpcLayerCost(calls);
  const params = { calls };
  return [
    figure('api', 'RPC layer CPU per unary call (context + middleware, beyond a bare call)', (layerUs - bareUs) / 1000, 'ms', 'lower', { name: 'GetTask server CPU per call (sqlite)', value: getTaskCpuMs }, params),
  ];
}

/** 5. API: CreateTask and GetTask per second and p99 with `clients` concurrent clients, each on its own connection. */
export async function api(store: StoreChoice, clients: number, seconds: number, echo: EchoServer): Promise<Figure[]> {
  const server = await ServerProcess.start(await store.uri());
  try {
    await server.target('t', 'nobody'); // no agent: created tasks wait, ready
    const conns = Array.from({ length: clients }, () => server.taskClient());
    const ids: string[] = [];
    // With a request id, as the CLI and the SDKs send one (docs/design.md "Retries and request ids").
    const create = (c: (typeof conns)[number]): Promise<void> =>
      new Promise((resolve, reject) =>
        c.client.createTask({ target: 't', script: 'echo hello', message: 'bench', type: '', timeoutSeconds: 0, requestId: randomUUID() }, c.metadata, (err, res) => {
          if (err) reject(err);
          else {
            ids.push(res.task!.id);
            resolve();
          }
        }),
      );
    const get = (c: (typeof conns)[number], id: string): Promise<void> =>
      new Promise((resolve, reject) => c.client.getTask({ id }, c.metadata, (err) => (err ? reject(err) : resolve())));
    await Promise.all(conns.map(create)); // warm-up
    /** Server CPU per call of what `run` did, in ms (the process's own user + system time). */
    const cpuPerCall = async <T extends { perSecond: number; latencies: number[] }>(pid: number, run: () => Promise<T>): Promise<T & { cpuMs: number }> => {
      const before = procStat(pid).cpuSeconds;
      const result = await run();
      return { ...result, cpuMs: ((procStat(pid).cpuSeconds - before) * 1000) / result.latencies.length };
    };
    const creates = await cpuPerCall(server.pid, () => closedLoop(conns, seconds * 1000, create));
    const known = [...ids];
    let k = 0;
    const gets = await cpuPerCall(server.pid, () => closedLoop(conns, seconds * 1000, (c) => get(c, known[k++ % known.length]!)));
    for (const c of conns) c.client.close();
    const base = await cpuPerCall(echo.pid, () => unaryRate(echo, clients, seconds * 1000));
    const baseP99 = percentiles(base.latencies).p99;
    const params = { clients, seconds, store: store.name };
    const rateBase = { name: `raw grpc-js unary echo, ${clients} clients`, value: base.perSecond };
    const p99Base = { name: `raw grpc-js unary echo p99, ${clients} clients`, value: baseP99 };
    const cpuBase = { name: 'raw grpc-js unary echo, server CPU per call', value: base.cpuMs };
    return [
      figure('api', `CreateTask/s (${store.name})`, creates.perSecond, 'calls/s', 'higher', rateBase, params),
      figure('api', `CreateTask p99 (${store.name})`, percentiles(creates.latencies).p99, 'ms', 'lower', p99Base, params),
      figure('api', `CreateTask server CPU per call (${store.name})`, creates.cpuMs, 'ms', 'lower', cpuBase, params),
      figure('api', `GetTask/s (${store.name})`, gets.perSecond, 'calls/s', 'higher', rateBase, params),
      figure('api', `GetTask p99 (${store.name})`, percentiles(gets.latencies).p99, 'ms', 'lower', p99Base, params),
      figure('api', `GetTask server CPU per call (${store.name})`, gets.cpuMs, 'ms', 'lower', cpuBase, params),
      ...(store.name === 'sqlite' ? await layerFigures(gets.cpuMs, seconds * 50_000) : []),
    ];
  } finally {
    await server.stop();
  }
}
