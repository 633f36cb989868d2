/**
 * Feeds a task's output into a terminal: the bytes [start, end) of it,
 * in order, each exactly once, across reconnects and page reloads.
 *
 * - On open it reads from the tail: the last tailBytes stored (GetTaskLogs
 *   tail_bytes, so a running task's tail too; the first chunk says where), and
 *   follows from there. After a reload the terminal is rebuilt the same
 *   way, so no line is lost or shown twice.
 * - A follow that fails (UNAVAILABLE "server stopping; follow again", a
 *   network error) is opened again from the offset reached, the last
 *   chunk's offset plus its length; a chunk that overlaps what was written
 *   is cut, so a byte is never written twice.
 * - Flow control: writes are counted until xterm's write callback says
 *   they are parsed; past highWaterBytes the stream is not read (the
 *   browser stops reading the response, and the server holds back) until
 *   the backlog is under lowWaterBytes. A flood cannot freeze the tab.
 * - "Load earlier" reads the range before start (limitBytes) and writes
 *   [newStart, end) again into a reset terminal; at most maxBytes are ever
 *   in it, so memory stays bounded.
 */
import type { Task } from '../../gen/es/taskgate/v1/task_pb.js';
import { errorMessage, taskService } from './api.js';
import { keepFollowing } from './follow.js';

/** What the feed writes to (an xterm Terminal). */
export interface FeedTerminal {
  write(data: Uint8Array, callback: () => void): void;
  reset(): void;
}

/** How much a feed reads and buffers. */
export interface FeedOptions {
  /** Bytes read on open, from the end. Default 1 MiB. */
  tailBytes?: number;
  /** Bytes "Load earlier" adds. Default 1 MiB. */
  earlierBytes?: number;
  /** Most bytes ever written into the terminal. Default 8 MiB. */
  maxBytes?: number;
  /** Unparsed bytes past which reading pauses. Default 256 KiB. */
  highWaterBytes?: number;
  /** Unparsed bytes under which reading resumes. Default 64 KiB. */
  lowWaterBytes?: number;
}

/** What a feed reports to its page. */
export interface FeedState {
  /** The output's first byte in the terminal. */
  start: number;
  /** The output's byte after the last one in the terminal. */
  end: number;
  /** Bytes of output the task has, as far as known. */
  total: number;
  /** The task ended and all its output is in. */
  finished: boolean;
  /** The last failure while reconnecting; "" when healthy. */
  error: string;
}

const MiB = 1024 * 1024;

/** Keeps one terminal fed with one task's output. */
export class TerminalFeed {
  readonly #id: string;
  readonly #term: FeedTerminal;
  readonly #options: Required<FeedOptions>;
  readonly #onChange: (state: FeedState) => void;
  readonly #onFinished: (task: Task) => void;
  #state: FeedState;
  #controller = new AbortController();
  #running: Promise<void> = Promise.resolve();
  #unparsed = 0;
  #drained: (() => void)[] = [];
  #closed = false;
  /** Whether the tail's start is known: the first read asks the server for the last tailBytes. */
  #placed = false;

  constructor(
    id: string,
    outputBytes: number,
    term: FeedTerminal,
    onChange: (state: FeedState) => void,
    onFinished: (task: Task) => void,
    options: FeedOptions = {},
  ) {
    this.#id = id;
    this.#term = term;
    this.#onChange = onChange;
    this.#onFinished = onFinished;
    this.#options = {
      tailBytes: options.tailBytes ?? MiB,
      earlierBytes: options.earlierBytes ?? MiB,
      maxBytes: options.maxBytes ?? 8 * MiB,
      highWaterBytes: options.highWaterBytes ?? 256 * 1024,
      lowWaterBytes: options.lowWaterBytes ?? 64 * 1024,
    };
    // Where the tail starts is known from the first chunk (a running task's outputBytes is 0 until it ends).
    this.#state = { start: 0, end: 0, total: outputBytes, finished: false, error: '' };
  }

  /** The feed's position now. */
  get state(): FeedState {
    return this.#state;
  }

  /** Whether "Load earlier" can add anything. */
  get canLoadEarlier(): boolean {
    return this.#state.start > 0 && this.#state.end - this.#state.start < this.#options.maxBytes;
  }

  /** Starts following. */
  open(): void {
    this.#running = this.#follow(this.#controller.signal);
  }

  /** Stops reading; the terminal is left as it is. */
  close(): void {
    this.#closed = true;
    this.#controller.abort();
    this.#release();
  }

  /** Reads the range before the terminal's start and writes [newStart, end) again. */
  async loadEarlier(): Promise<void> {
    if (!this.canLoadEarlier || this.#closed) return;
    this.#controller.abort();
    this.#release();
    await this.#running;
    const { start, end } = this.#state;
    const newStart = Math.max(0, start - this.#options.earlierBytes, end - this.#options.maxBytes);
    this.#controller = new AbortController();
    const signal = this.#controller.signal;
    this.#term.reset();
    this.#unparsed = 0;
    this.#update({ start: newStart, end: newStart });
    this.#running = (async () => {
      await this.#readRange(signal, end);
      if (!signal.aborted && !this.#state.finished) await this.#follow(signal);
    })();
    await this.#running;
  }

  #update(change: Partial<FeedState>): void {
    this.#state = { ...this.#state, ...change };
    if (this.#state.end > this.#state.total) this.#state.total = this.#state.end;
    this.#onChange(this.#state);
  }

  /** Writes a chunk at `offset`, cutting what was already written; waits while the terminal lags. */
  async #write(offset: number, data: Uint8Array, signal: AbortSignal): Promise<void> {
    const { end } = this.#state;
    if (offset > end) throw new Error(`output gap: expected byte ${end}, got ${offset}`);
    const fresh = offset < end ? data.subarray(end - offset) : data;
    if (fresh.length === 0) return;
    this.#unparsed += fresh.length;
    this.#term.write(fresh, () => {
      this.#unparsed -= fresh.length;
      if (this.#unparsed <= this.#options.lowWaterBytes) this.#release();
    });
    this.#update({ end: end + fresh.length, error: '' });
    if (this.#unparsed > this.#options.highWaterBytes && !signal.aborted) {
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  #release(): void {
    const waiting = this.#drained;
    this.#drained = [];
    for (const resolve of waiting) resolve();
  }

  /** Follows from the end reached until the task has finished. */
  async #follow(signal: AbortSignal): Promise<void> {
    await keepFollowing(
      signal,
      async (attempt) => {
        const from = this.#placed ? { offset: BigInt(this.#state.end) } : { tailBytes: BigInt(this.#options.tailBytes) };
        const stream = taskService.getTaskLogs({ id: this.#id, ...from, follow: true }, { signal });
        for await (const message of stream) {
          attempt.healthy();
          const event = message.event;
          if (event.case === 'chunk') {
            if (!this.#placed) {
              const start = Number(event.value.offset);
              this.#placed = true;
              this.#update({ start, end: start });
            }
            await this.#write(Number(event.value.offset), event.value.data, signal);
          } else if (event.case === 'finished') {
            this.#placed = true;
            this.#update({ finished: true, total: Number(event.value.outputBytes) });
            this.#onFinished(event.value);
            return true;
          }
          if (signal.aborted) return true;
        }
        return signal.aborted; // Closed without `finished`: follow again.
      },
      (error) => this.#update({ error: errorMessage(error) }),
    );
  }

  /** Writes the output from the current end up to `until`. */
  async #readRange(signal: AbortSignal, until: number): Promise<void> {
    await keepFollowing(
      signal,
      async (attempt) => {
        const { end } = this.#state;
        if (end >= until) return true;
        const stream = taskService.getTaskLogs({ id: this.#id, offset: BigInt(end), limitBytes: BigInt(until - end) }, { signal });
        for await (const message of stream) {
          attempt.healthy();
          if (message.event.case === 'chunk') {
            const chunk = message.event.value;
            const offset = Number(chunk.offset);
            await this.#write(offset, chunk.data.subarray(0, Math.max(0, until - offset)), signal);
          }
          if (signal.aborted || this.#state.end >= until) return true;
        }
        return this.#state.end >= until;
      },
      (error) => this.#update({ error: errorMessage(error) }),
    );
  }
}
