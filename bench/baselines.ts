/**
 * Baselines: the same physical work without Taskgate, measured in the same
 * run on the same machine. A raw grpc-js server (bench/echo-server.ts, its own
 * process) for message round trips and unary rates; bare node-pty for
 * spawning programs and reading their output.
 */
import { credentials, makeGenericClientConstructor, type Client, type ClientDuplexStream } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as pty from 'node-pty';
import { ECHO_SERVICE } from './echo-server.js';
import { closedLoop, nowMs, workers } from './lib.js';

const EchoClient = makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
type Echo = Client & {
  echo(req: Buffer, cb: (err: Error | null, res: Buffer) => void): void;
  stream(): ClientDuplexStream<Buffer, Buffer>;
};

/** A raw grpc-js echo server in its own process. */
export class EchoServer {
  private constructor(
    readonly child: ChildProcess,
    readonly address: string,
  ) {}

  static async start(port = 0): Promise<EchoServer> {
    const child = spawn(process.execPath, [join(import.meta.dirname, 'echo-server.js'), String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const address = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^ready (\d+)$/.exec(line);
        if (m) resolve(`127.0.0.1:${m[1]}`);
      });
    });
    return new EchoServer(child, address);
  }

  get pid(): number {
    return this.child.pid!;
  }

  client(): Echo {
    return new EchoClient(this.address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as Echo;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** Round-trip times of `n` small messages over one bidi stream, in ms. */
export async function bidiRoundTrips(server: EchoServer, n: number): Promise<number[]> {
  const client = server.client();
  const call = client.stream();
  const payload = Buffer.alloc(64, 1);
  const samples: number[] = [];
  let waiting: (() => void) | null = null;
  call.on('data', () => waiting?.());
  for (let i = 0; i < n + 20; i++) {
    const t0 = nowMs();
    await new Promise<void>((resolve) => {
      waiting = resolve;
      call.write(payload);
    });
    // The first 20 warm the connection up.
    if (i >= 20) samples.push(nowMs() - t0);
  }
  call.end();
  client.close();
  return samples;
}

/** Unary calls per second and their latencies with `clients` concurrent clients, each on its own connection. */
export async function unaryRate(server: EchoServer, clients: number, durationMs: number): Promise<{ perSecond: number; latencies: number[] }> {
  const payload = Buffer.alloc(200, 1);
  const conns = Array.from({ length: clients }, () => server.client());
  const call = (c: Echo): Promise<void> => new Promise((resolve, reject) => c.echo(payload, (err) => (err ? reject(err) : resolve())));
  await Promise.all(conns.map(call));
  const result = await closedLoop(conns, durationMs, call);
  for (const c of conns) c.close();
  return result;
}

/** A script file in a temporary directory, run by `sh` as Taskgate runs an `sh` task. */
export class ScriptDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'taskgate-bench-pty-'));
  #n = 0;

  write(script: string): string {
    const path = join(this.dir, `s${this.#n++}`);
    writeFileSync(path, script);
    return path;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One bare node-pty run of `sh FILE`: times from the spawn call, and the bytes read. */
export function ptyRun(file: string, expectBytes = 0): Promise<{ firstByteMs: number; exitMs: number; bytes: number; doneMs: number }> {
  return new Promise((resolve) => {
    const t0 = nowMs();
    const term = pty.spawn('/bin/sh', [file], { name: 'xterm-256color', cols: 200, rows: 50, cwd: tmpdir(), env: { PATH: process.env.PATH ?? '' }, encoding: null });
    let firstByteMs = -1;
    let exitMs = -1;
    let bytes = 0;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      resolve({ firstByteMs, exitMs, bytes, doneMs: nowMs() - t0 });
    };
    term.onData((d: string | Buffer) => {
      if (firstByteMs < 0) firstByteMs = nowMs() - t0;
      bytes += d.length;
      if (expectBytes && bytes >= expectBytes && exitMs >= 0) finish();
    });
    term.onExit(() => {
      exitMs = nowMs() - t0;
      if (!expectBytes || bytes >= expectBytes) finish();
      // Bare node-pty may lose the tail (issues #72, #726); do not wait forever for it.
      else setTimeout(finish, 500);
    });
  });
}

/** Spawn-and-exit runs per second of `sh FILE` with `concurrency` at once. */
export async function ptyRate(file: string, count: number, concurrency: number): Promise<number> {
  const ms = await workers(count, concurrency, async () => {
    await ptyRun(file);
  });
  return (count / ms) * 1000;
}
