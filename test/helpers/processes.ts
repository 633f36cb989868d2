/**
 * The `taskgate` command as separate processes, for tests that SIGKILL a
 * server or an agent the way a crash or an OOM kill would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

/** A free TCP port on 127.0.0.1 (to restart a server on the same address). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A running `taskgate` process. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly #lines: string[] = [];
  readonly #waiters: Array<{ test: (line: string) => boolean; resolve: () => void }> = [];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.#lines.push(line);
        for (const w of [...this.#waiters]) {
          if (w.test(line)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      });
    }
  }

  /** Resolves when a line of its output matches (or already did); rejects if it exits first. */
  until(pattern: RegExp): Promise<void> {
    if (this.#lines.some((l) => pattern.test(l))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ test: (l) => pattern.test(l), resolve });
      void this.exited.then((code) => reject(new Error(`process exited (${code}) before printing ${pattern}:\n${this.#lines.join('\n')}`)));
    });
  }

  /** Everything it printed so far. */
  get output(): string {
    return this.#lines.join('\n');
  }

  /** SIGKILL, and wait until it is gone. */
  async crash(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, and wait until it exits. */
  async terminate(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exited;
  }
}
