/**
 * Runs one script in a pseudo-terminal (node-pty) and reports every byte of
 * its output, then its exit status.
 *
 * Completeness: node-pty on Linux can drop the tail of the output of a program
 * that writes and exits at once (node-pty issues #72 and #726): when the last
 * holder of the pty's slave side exits, the master read may fail with EIO
 * before the buffered bytes were read, and node-pty destroys its socket 200 ms
 * after the exit whether or not it was drained. So the runner:
 *   1. opens the slave side itself right after spawning, so the master never
 *      sees EIO while the task's output is still buffered;
 *   2. takes the exit status from node-pty's native exit callback at once
 *      (marking the terminal as closed so node-pty does not wait on, or time
 *      out, the socket);
 *   3. then writes a random end marker into the slave; the pty delivers bytes
 *      in order, so once the marker comes out of the master every byte the
 *      program wrote before exiting has been read. Bytes after the marker come
 *      from background children that outlived the script and are not part of
 *      the task's output;
 *   4. closes the slave and the master socket (a survivor still holding the
 *      slave would otherwise keep the master open until it is killed).
 * Step 2 sets a private field of node-pty's UnixTerminal; node-pty is pinned
 * to 1.1.0 and test/integration/pty-runner.test.ts (200 runs of a 20 KB
 * write-and-exit) fails if an upgrade changes it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, write } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as pty from 'node-pty';

/** What to run. */
export interface RunSpec {
  /** Absolute path of the program (agent/interpreters.ts builds it for a task type). */
  file: string;
  args: string[];
  /** Working directory. */
  cwd: string;
  /** The whole environment of the process. */
  env: Record<string, string>;
  /** File mode creation mask of the process (e.g. 0o077); default: the agent's. */
  umask?: number;
}

/** Callbacks of a run. */
export interface RunHandlers {
  /** The process was spawned. */
  onStart(pid: number): void;
  /** Output, in order. */
  onData(data: Buffer): void;
}

/** How a run ended: exactly one of exitCode, signal, error is meaningful. */
export interface RunResult {
  /** Exit status when the process exited normally. */
  exitCode: number | null;
  /** Signal name (e.g. "SIGTERM") when a signal ended it; else "". */
  signal: string;
  /** Why it could not be started; else "". */
  error: string;
}

/** Terminal size given to tasks. */
const COLS = 200;
const ROWS = 50;
/** How long to wait for the end marker after exit before giving up, in ms. */
const DRAIN_TIMEOUT_MS = 10_000;
/** ASCII EOT: sent once at start so a script that reads stdin sees end-of-file, not a hang. */
const EOF = '\x04';

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(osConstants.signals).map(([name, num]) => [num, name]),
);

/** The fields of node-pty's UnixTerminal this runner relies on (see the file comment). */
interface UnixTerminalInternals {
  _emittedClose: boolean;
  /** The master side's read socket. */
  _socket: { destroy(): void; on(event: 'error', listener: (err: Error) => void): void };
}

/** A running script. */
export class PtyRun {
  /** Settles when the process has exited and all its output was delivered. */
  readonly done: Promise<RunResult>;
  #term: pty.IPty | null = null;
  #paused = false;

  private constructor(spec: RunSpec, handlers: RunHandlers) {
    this.done = this.#run(spec, handlers);
  }

  /** Starts `spec`; failures to start are reported through `done`, never thrown. */
  static start(spec: RunSpec, handlers: RunHandlers): PtyRun {
    return new PtyRun(spec, handlers);
  }

  /** The process id (and process group id) once started. */
  get pid(): number | undefined {
    return this.#term?.pid;
  }

  /** Stops reading output, so the program blocks once the pty buffer is full. */
  pause(): void {
    if (this.#paused || !this.#term) return;
    this.#paused = true;
    this.#term.pause();
  }

  /** Resumes reading output. */
  resume(): void {
    if (!this.#paused || !this.#term) return;
    this.#paused = false;
    this.#term.resume();
  }

  /** Sends a signal to the whole process group of the task. */
  kill(signal: NodeJS.Signals): void {
    const pid = this.#term?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone.
    }
  }

  async #run(spec: RunSpec, handlers: RunHandlers): Promise<RunResult> {
    let term: pty.IPty;
    // The child inherits the umask at fork, which node-pty does synchronously.
    const umask = spec.umask === undefined ? undefined : process.umask(spec.umask);
    try {
      // forkpty makes the child a session leader: it has its own process group.
      term = pty.spawn(spec.file, spec.args, {
        name: 'xterm-256color',
        cols: COLS,
        rows: ROWS,
        cwd: spec.cwd,
        env: spec.env,
        encoding: null,
      });
    } catch (err) {
      return { exitCode: null, signal: '', error: (err as Error).message };
    } finally {
      if (umask !== undefined) process.umask(umask);
    }
    this.#term = term;
    // node-pty rethrows a read error of the master other than EIO (such as
    // ECONNRESET once the pty is torn down under a task that suspended its
    // output) unless someone else listens: an uncaught exception would take
    // the whole agent down. Its own listener has already closed the pty;
    // the end of the output is handled below like any other.
    (term as unknown as UnixTerminalInternals)._socket.on('error', () => undefined);
    // Non-blocking: a task that suspends terminal output (TCOOFF) must not
    // block a thread of the agent's pool on the marker write below.
    const slave = openSync((term as unknown as { ptsName: string }).ptsName, fsConstants.O_RDWR | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK);
    (term as unknown as UnixTerminalInternals)._emittedClose = true;
    term.write(EOF);
    handlers.onStart(term.pid);

    return new Promise<RunResult>((resolve) => {
      const marker = Buffer.from(`\x1b]taskgate-end;${randomBytes(16).toString('hex')}\x07`);
      let result: RunResult | null = null;
      // After exit, hold back a possible partial marker at the end of the data.
      let tail = Buffer.alloc(0);
      let drainTimer: NodeJS.Timeout | undefined;
      let finished = false;

      const finish = (): void => {
        if (finished || !result) return;
        finished = true;
        clearTimeout(drainTimer);
        dataListener.dispose();
        closeSync(slave);
        // Every byte of the task is read: close the master as well. Left to
        // itself it waits for every holder of the slave side, and a task's
        // survivor, killed later, can leave it open for good.
        (term as unknown as UnixTerminalInternals)._socket.destroy();
        resolve(result);
      };

      const dataListener = term.onData((chunk: string | Buffer) => {
        if (finished) return;
        const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (!result) {
          handlers.onData(data);
          return;
        }
        const joined = tail.length ? Buffer.concat([tail, data]) : data;
        const at = joined.indexOf(marker);
        if (at >= 0) {
          if (at > 0) handlers.onData(joined.subarray(0, at));
          tail = Buffer.alloc(0);
          finish();
          return;
        }
        const keep = Math.min(joined.length, marker.length - 1);
        if (joined.length > keep) handlers.onData(joined.subarray(0, joined.length - keep));
        tail = Buffer.from(joined.subarray(joined.length - keep));
      });

      term.onExit(({ exitCode, signal }) => {
        result = signal
          ? { exitCode: null, signal: SIGNAL_NAMES.get(signal) ?? `signal ${signal}`, error: '' }
          : { exitCode, signal: '', error: '' };
        this.resume();
        // A full pty buffer (or suspended output) answers EAGAIN: try again
        // until the drain timeout; any other error means the pty is gone.
        let sent = 0;
        const writeMarker = (): void => {
          if (finished) return;
          write(slave, marker, sent, marker.length - sent, null, (err, written) => {
            if (err && (err as NodeJS.ErrnoException).code !== 'EAGAIN') return finish();
            sent += err ? 0 : written;
            if (sent < marker.length) setTimeout(writeMarker, err ? 10 : 0);
          });
        };
        writeMarker();
        drainTimer = setTimeout(() => {
          // The marker never came out: the task suspended the terminal's
          // output (TCOOFF) before it exited, or something keeps the pty
          // busy. Better an honest end than a hang.
          if (tail.length) handlers.onData(tail);
          finish();
        }, DRAIN_TIMEOUT_MS);
      });
    });
  }
}
