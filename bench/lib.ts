/**
 * What every benchmark shares: the result shape (each figure beside its
 * baseline), percentiles, process statistics from /proc, and a Taskgate
 * server started as its own process (so its CPU and memory are its own).
 */
import { credentials, type Metadata } from '@grpc/grpc-js';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { TaskServiceClient } from '../gen/taskgate/v1/task.js';
import { Target } from '../gen/taskgate/v1/target.js';
import { TaskgateAgent, type AgentOptions } from '../agent/agent.js';
import { Api } from '../cli/client.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../shared/limits.js';
import { CliProcess, freePort } from '../test/helpers/processes.js';

/** Where server processes write CPU profiles (bench --profile-server); null: they do not. */
let serverProfileDir: string | null = null;

/** Makes every server started from now on able to write CPU profiles into `dir` ({@link ServerProcess.profileMark}). */
export function profileServers(dir: string): void {
  mkdirSync(dir, { recursive: true });
  serverProfileDir = dir;
}

/** Data directories given to {@link ServerProcess.start}: their owner removes them, not {@link ServerProcess.stop}. */
const keptDirs = new Set<string>();

/** One measured figure, with the baseline it should be read against. */
export interface Figure {
  /** Benchmark group, e.g. "latency". */
  group: string;
  /** What was measured, e.g. "ready → spawn p50 (sqlite)". */
  name: string;
  value: number;
  unit: string;
  /** The same physical work without Taskgate, measured in the same run. */
  baseline: { name: string; value: number } | null;
  /** value / baseline (how many times the baseline; for rates < 1 means slower). */
  ratio: number | null;
  /** Whether bigger is better (rates) or smaller (latencies, memory). */
  better: 'higher' | 'lower';
  /** Parameters: counts, store, agents. */
  params?: Record<string, string | number>;
}

/** Builds a figure and its ratio. */
export function figure(
  group: string,
  name: string,
  value: number,
  unit: string,
  better: 'higher' | 'lower',
  baseline: { name: string; value: number } | null,
  params?: Record<string, string | number>,
): Figure {
  const ratio = baseline && baseline.value !== 0 ? round(value / baseline.value, 2) : null;
  return { group, name, value: round(value, 3), unit, better, baseline: baseline ? { ...baseline, value: round(baseline.value, 3) } : null, ratio, params };
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Nearest-rank percentiles of `samples` (any order). */
export function percentiles(samples: number[]): { p50: number; p95: number; p99: number; max: number; mean: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return { p50: at(50), p95: at(95), p99: at(99), max: sorted[sorted.length - 1] ?? NaN, mean };
}

/** Milliseconds on a monotonic clock with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.now();
}

/** Wall-clock milliseconds with sub-millisecond resolution (comparable with the server's Date.now()). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Resident memory and consumed CPU of a process. */
export function procStat(pid: number): { rssBytes: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime, in clock ticks (USER_HZ is 100 on Linux).
  return { rssBytes: rssKb * 1024, cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100 };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A `taskgate server` process on a free port, with an admin API client. */
export class ServerProcess {
  private constructor(
    readonly proc: CliProcess,
    readonly api: Api,
    readonly address: string,
    readonly dir: string,
    readonly args: string[],
    readonly metricsUrl: string,
    readonly env: Record<string, string>,
  ) {}

  /**
   * Starts a server on the embedded store, or on `mongodbUri`. With
   * `profileDir` (bench --profile-server) it loads bench/profile-hook.ts:
   * {@link profileMark} starts and stops a CPU profile written there.
   * With `dataDir` it runs on that directory (an embedded store seeded
   * beforehand), which {@link stop} then leaves in place.
   */
  static async start(mongodbUri: string | null, extra: string[] = [], profileDir = serverProfileDir, dataDir?: string, attempt = 1): Promise<ServerProcess> {
    const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'taskgate-bench-'));
    if (dataDir) keptDirs.add(dir);
    chmodSync(dir, 0o711); // agent work dirs inside: tasks run as users of their own
    const address = `127.0.0.1:${await freePort()}`;
    // Its Prometheus port: the store operations it made are counted there (taskgate_store_operation_seconds_count).
    const metrics = `127.0.0.1:${await freePort()}`;
    // One admin token drives every client: the per-user limits would measure themselves.
    const args = ['server', '--listen', address, '--data-dir', dir, '--log-level', 'info', '--rate-limit', '0', '--max-streams-per-user', '0', '--max-connections', '0', '--metrics-listen', metrics, ...extra];
    if (mongodbUri) args.push('--mongodb-uri', mongodbUri);
    const hook = join(import.meta.dirname, 'profile-hook.js');
    const env: Record<string, string> = profileDir ? { NODE_OPTIONS: `--import ${hook}`, TASKGATE_BENCH_PROFILE_DIR: profileDir } : {};
    const proc = new CliProcess(args, env);
    try {
      await proc.until(/taskgate server listening/);
    } catch (err) {
      // A free port can be taken between finding it and listening on it
      // (other work on the machine opens connections from the same range):
      // new ports, up to three times.
      if (!/address is in use|EADDRINUSE/.test(proc.output) || attempt >= 3) throw err;
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
      return ServerProcess.start(mongodbUri, extra, profileDir, dataDir, attempt + 1);
    }
    await proc.until(/token written to/);
    return new ServerProcess(proc, new Api({ server: address, tokenFile: join(dir, 'admin.token') }), address, dir, args, `http://${metrics}/metrics`, env);
  }

  /** A new process of a stopped server, on the same address and data. */
  static async restart(old: ServerProcess): Promise<ServerProcess> {
    old.api.close();
    const proc = new CliProcess(old.args, old.env);
    await proc.until(/taskgate server listening/);
    return new ServerProcess(proc, new Api({ server: old.address, tokenFile: join(old.dir, 'admin.token') }), old.address, old.dir, old.args, old.metricsUrl, old.env);
  }

  /**
   * A new process of a stopped server on the same data, on free ports of
   * its own: a port kept through a long pause (a store seeded meanwhile)
   * may have been taken by then.
   */
  static async startAgain(old: ServerProcess): Promise<ServerProcess> {
    old.api.close();
    const address = `127.0.0.1:${await freePort()}`;
    const metrics = `127.0.0.1:${await freePort()}`;
    const args = old.args.map((arg, i) => (old.args[i - 1] === '--listen' ? address : old.args[i - 1] === '--metrics-listen' ? metrics : arg));
    const proc = new CliProcess(args, old.env);
    await proc.until(/taskgate server listening/);
    return new ServerProcess(proc, new Api({ server: address, tokenFile: join(old.dir, 'admin.token') }), address, old.dir, args, `http://${metrics}/metrics`, old.env);
  }

  /** Starts, then (the next call) stops and writes the server's CPU profile, when it was started with a profile directory. */
  profileMark(): void {
    if (this.env.TASKGATE_BENCH_PROFILE_DIR) this.proc.child.kill('SIGUSR2');
  }

  /**
   * How many store operations the server has made so far, by operation
   * (every method call on its Store, each one round trip to the database:
   * one synchronous statement or transaction on SQLite, at least one
   * command on MongoDB), read from its metrics.
   */
  async storeCalls(): Promise<Map<string, number>> {
    const res = await fetch(this.metricsUrl);
    const text = await res.text();
    const calls = new Map<string, number>();
    for (const m of text.matchAll(/^taskgate_store_operation_seconds_count\{([^}]*)\} (\d+)$/gm)) {
      const op = /op="([^"]+)"/.exec(m[1]!)?.[1] ?? '?';
      calls.set(op, (calls.get(op) ?? 0) + Number(m[2]));
    }
    return calls;
  }

  get pid(): number {
    return this.proc.child.pid!;
  }

  /** A bash target served by agent `agent`. */
  async target(name: string, agent: string, rules: Partial<Target> = {}): Promise<void> {
    await this.api.call(this.api.targets, this.api.targets.createTarget, { target: Target.fromPartial({ name, agent, type: 'sh', ...rules }) });
  }

  /** An agent in this process, connected. */
  async agent(name: string, options: Partial<AgentOptions> = {}): Promise<TaskgateAgent> {
    const { token } = await this.api.call(this.api.agents, this.api.agents.createAgentToken, { name, ttl: undefined });
    const agent = new TaskgateAgent({ server: this.address, token, name, workDir: join(this.dir, `agent-${name}`), ...options });
    agent.start();
    await agent.connected();
    return agent;
  }

  /** A TaskService client on its own TCP connection (as separate API users have). */
  taskClient(): { client: TaskServiceClient; metadata: Metadata } {
    const client = new TaskServiceClient(this.address, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
    });
    return { client, metadata: this.api.metadata };
  }

  /** Stops it and removes its data; a log holding errors is kept in bench/results/logs/ and named on stderr. */
  async stop(): Promise<void> {
    this.api.close();
    await this.proc.terminate();
    const log = this.proc.output;
    if (/"level":(50|60)/.test(log)) {
      const dir = join(import.meta.dirname, '..', '..', 'bench', 'results', 'logs');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `server-${basename(this.dir)}.log`);
      writeFileSync(file, `${log}\n`);
      process.stderr.write(`!!! the server logged errors: ${file}\n`);
    }
    if (!keptDirs.has(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A closed loop: each of `clients` calls `op` again as soon as its last call
 * returned, for `durationMs`. Returns calls per second and every latency (ms).
 */
export async function closedLoop<C>(clients: readonly C[], durationMs: number, op: (client: C) => Promise<void>): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  const t0 = nowMs();
  const end = t0 + durationMs;
  await Promise.all(
    clients.map(async (c) => {
      while (nowMs() < end) {
        const s = nowMs();
        await op(c);
        latencies.push(nowMs() - s);
      }
    }),
  );
  return { perSecond: (latencies.length / (nowMs() - t0)) * 1000, latencies };
}

/** Runs `fn` on `concurrency` workers until `count` items were done; returns the elapsed ms. */
export async function workers(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
  return nowMs() - t0;
}
