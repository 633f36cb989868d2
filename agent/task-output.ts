/**
 * One task's output on its way to the server: batched into sequence-numbered
 * chunks by size and by time, kept until the server acknowledges them, and
 * resent after a reconnect. The unacknowledged bytes are bounded: past
 * `maxUnackedBytes` the producer is asked to pause (the pty stops being read,
 * so the program itself blocks), and to resume once acknowledgements arrive.
 *
 * Past the server's per-task output limit the rest is dropped: one marker
 * line says so, the program keeps running (its output is still read, so it
 * never blocks on a full pty), and the exit reports how many bytes were
 * dropped (docs/limits.md).
 */
import type { ConnectRequest, TaskExit } from '../gen/taskgate/v1/agent.js';
import type { RunResult } from './pty-runner.js';

/** Batching and buffering limits. */
export interface OutputOptions {
  /** Largest chunk sent, in bytes. */
  maxChunkBytes: number;
  /** Longest a byte waits before its chunk is sent, in ms. */
  flushIntervalMs: number;
  /** Unacknowledged bytes above which the producer is paused. */
  maxUnackedBytes: number;
}

interface Chunk {
  seq: number;
  offset: number;
  data: Buffer;
}

/** Sends a message if connected; returns false when it could not be sent now. */
export type Send = (message: ConnectRequest) => boolean;

/** The output of one task. */
export class TaskOutput {
  readonly taskId: string;
  readonly #options: OutputOptions;
  readonly #send: Send;
  readonly #onPressure: (pause: boolean) => void;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;
  #offset = 0;
  readonly #unacked: Chunk[] = [];
  #unackedBytes = 0;
  #paused = false;
  #exit: TaskExit | null = null;
  #maxOutputBytes = Number.POSITIVE_INFINITY;
  #dropped = 0;

  constructor(taskId: string, options: OutputOptions, send: Send, onPressure: (pause: boolean) => void) {
    this.taskId = taskId;
    this.#options = options;
    this.#send = send;
    this.#onPressure = onPressure;
  }

  /** Whether the exit was reported (the task is only waiting for its final ack). */
  get exited(): boolean {
    return this.#exit !== null;
  }

  /** Sets the output limit (from the server's Welcome); 0 means none. */
  setLimit(maxOutputBytes: number): void {
    this.#maxOutputBytes = maxOutputBytes > 0 ? maxOutputBytes : Number.POSITIVE_INFINITY;
  }

  /** Output held in memory: waiting to be sent or to be acknowledged, in bytes. */
  get bufferedBytes(): number {
    return this.#pendingBytes + this.#unackedBytes;
  }

  /** Output bytes dropped past the limit. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Adds output. */
  push(data: Buffer): void {
    if (data.length === 0) return;
    const room = this.#maxOutputBytes - (this.#offset + this.#pendingBytes);
    if (data.length > room) {
      if (this.#dropped === 0) {
        const kept = Math.max(0, room);
        if (kept > 0) this.#append(data.subarray(0, kept));
        this.#append(Buffer.from(`\r\n[taskgate: output truncated at ${this.#offset + this.#pendingBytes} bytes; the task keeps running]\r\n`));
        this.#dropped += data.length - kept;
      } else {
        this.#dropped += data.length;
      }
      return;
    }
    this.#append(data);
  }

  #append(data: Buffer): void {
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    if (this.#pendingBytes >= this.#options.maxChunkBytes) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#options.flushIntervalMs);
  }

  /** Sends everything pending now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pendingBytes === 0) return;
    const all = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    for (let at = 0; at < all.length; at += this.#options.maxChunkBytes) {
      const chunk: Chunk = { seq: this.#seq++, offset: this.#offset, data: all.subarray(at, at + this.#options.maxChunkBytes) };
      this.#offset += chunk.data.length;
      this.#unacked.push(chunk);
      this.#unackedBytes += chunk.data.length;
      this.#sendChunk(chunk);
    }
    if (!this.#paused && this.#unackedBytes > this.#options.maxUnackedBytes) {
      this.#paused = true;
      this.#onPressure(true);
    }
  }

  /** Records the end of the run and sends it after the last chunk. */
  finish(result: RunResult & { timedOut?: boolean; findings?: Record<string, number> }): void {
    this.flush();
    this.#exit = {
      taskId: this.taskId,
      exitCode: result.exitCode ?? undefined,
      signal: result.signal,
      error: result.error,
      chunks: this.#seq,
      totalBytes: this.#offset,
      timedOut: result.timedOut ?? false,
      droppedBytes: this.#dropped,
      findings: result.findings ?? {},
    };
    this.#send({ message: { $case: 'exit', value: this.#exit } });
  }

  /** The server holds every chunk up to `seq`. */
  ack(seq: number): void {
    while (this.#unacked.length > 0 && (this.#unacked[0] as Chunk).seq <= seq) {
      this.#unackedBytes -= (this.#unacked.shift() as Chunk).data.length;
    }
    if (this.#paused && this.#unackedBytes <= this.#options.maxUnackedBytes / 2) {
      this.#paused = false;
      this.#onPressure(false);
    }
  }

  /** Sends again what the server has not acknowledged (after a reconnect). */
  resend(): void {
    for (const chunk of this.#unacked) this.#sendChunk(chunk);
    if (this.#exit) this.#send({ message: { $case: 'exit', value: this.#exit } });
  }

  /** Stops the flush timer. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #sendChunk(chunk: Chunk): void {
    this.#send({ message: { $case: 'output', value: { taskId: this.taskId, ...chunk } } });
  }
}
