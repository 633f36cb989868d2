/**
 * One task held by the agent, as an explicit state machine:
 *
 *   preparing -> running -> stopping -> reaping -> reporting -> done
 *        \           \________________/^
 *         \_______________________________/
 *
 * - preparing: secrets resolved, identity taken, workspace written;
 * - running: the process was spawned;
 * - stopping: SIGTERM was sent (a kill request, the timeout or a drain) and
 *   SIGKILL follows after the grace period;
 * - reaping: the main process is gone (or never started); every process of
 *   the task's identity is killed, its workspace removed, its id freed;
 * - reporting: the exit was sent; waiting for the server's final ack;
 * - done: forgotten (also the end of every state when the agent stops hard).
 */
import type { Logger } from '../shared/logger.js';
import type { PtyRun, RunResult } from './pty-runner.js';
import type { Redactor } from './redactor.js';
import type { TaskOutput } from './task-output.js';
import type { TaskIdentity } from './task-users.js';

/** Where a held task stands. */
export type TaskPhase = 'preparing' | 'running' | 'stopping' | 'reaping' | 'reporting' | 'done';

const LEGAL: Readonly<Record<TaskPhase, readonly TaskPhase[]>> = {
  preparing: ['running', 'reaping', 'done'],
  running: ['stopping', 'reaping', 'done'],
  stopping: ['reaping', 'done'],
  reaping: ['reporting', 'done'],
  reporting: ['done'],
  done: [],
};

/** Why a task is being stopped before it ended by itself. */
export type StopReason = 'kill' | 'timeout' | 'drain';

/** A task the agent holds, from its RunTask to the server's final ack. */
export class HeldTask {
  readonly id: string;
  readonly output: TaskOutput;
  #phase: TaskPhase = 'preparing';
  readonly #logger: Logger;
  /** The process, once spawned. */
  run: PtyRun | null = null;
  /** Why it is being stopped, set once; a kill may arrive while it is still preparing. */
  stopReason: StopReason | null = null;
  /** Between SIGTERM and SIGKILL, in ms, for the stop in progress. */
  graceMs = 0;
  /** Masks PII and secrets before output is sent; null when the target asks for none. */
  redactor: Redactor | null = null;
  /** Emits what the redactor holds after a pause in the output. */
  holdTimer: NodeJS.Timeout | undefined;
  /** The timeout and the SIGKILL that follows a SIGTERM. */
  readonly timers: NodeJS.Timeout[] = [];
  /** Its own uid/gid, when the agent isolates tasks. */
  identity: TaskIdentity | null = null;
  /** Its private directory (HOME, cwd, script), once created. */
  workspace: string | null = null;
  /** The dropped-output total last sent in a heartbeat. */
  reportedDropped = 0;

  constructor(id: string, output: TaskOutput, logger: Logger) {
    this.id = id;
    this.output = output;
    this.#logger = logger;
  }

  /** The current phase. */
  get phase(): TaskPhase {
    return this.#phase;
  }

  /** Whether its process may still run (nothing was reaped yet). */
  get live(): boolean {
    return this.#phase === 'preparing' || this.#phase === 'running' || this.#phase === 'stopping';
  }

  /** Moves to `to`; an illegal move is a bug and throws. */
  transition(to: TaskPhase): void {
    const from = this.#phase;
    if (!LEGAL[from].includes(to)) throw new Error(`task ${this.id}: illegal move ${from} -> ${to}`);
    this.#phase = to;
    this.#logger.debug({ task: this.id, from, to }, 'task phase');
    if (to === 'reaping' || to === 'done') this.#clearTimers();
    if (to === 'done') this.output.dispose();
  }

  /** The result to report for a run that ended with `result`, given why it was stopped. */
  outcome(result: RunResult): RunResult & { timedOut: boolean } {
    return { ...result, timedOut: this.stopReason === 'timeout' };
  }

  #clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.length = 0;
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }
}
