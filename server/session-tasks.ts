/**
 * The tasks running in one agent session (server/agent-session.ts) and what
 * the agent reports of them: starts, output chunks and exits. Output is
 * stored idempotently in seq order and acknowledged with the highest
 * contiguous seq; an exit finishes its task only when every chunk the agent
 * says it sent is stored (docs/agent-protocol.md). The session hands these
 * messages over one at a time, in arrival order.
 */
import type { ConnectResponse, TaskExit, TaskOutput, TaskStarted } from '../gen/taskgate/v1/agent.js';
import { InvalidArgumentError, PermissionDeniedError } from '../shared/errors.js';
import { MAX_CHUNK_BYTES } from '../shared/limits.js';
import type { Metrics } from './metrics.js';
import type { ClaimedTasks, ClaimNext, OutputTotals, OutputStore, TargetStore, TaskStore, TaskRecord } from './store/store.js';
import type { TaskHub } from './task-hub.js';
import type { MoveContext, TaskMachine } from './task-machine.js';

/** How long a claimed task's start time may wait to be written with its exit, in ms (see {@link SessionTasks.started}). */
export const STARTED_WRITE_DELAY_MS = 1000;

/** What a task report means for the session: a message about a task it does not run. */
export type Report = 'started' | 'output' | 'exit';

/** What {@link SessionTasks} needs of its session. */
export interface SessionTasksHost {
  /** The agent's name (known once it said Hello). */
  agentName(): string;
  /** A message about a task not running in this session (see AgentSession #notHeld). */
  notHeld(taskId: string, what: Report): void;
  /** Sends a message down the stream (nothing once it closed). */
  write(message: ConnectResponse): void;
  /** Runs `fn` in the session's message queue, after the message being handled; a failure is logged as `what`. */
  later(fn: () => Promise<void>, what: string): void;
  /** A task stopped running in this session. */
  forgotten(taskId: string): void;
  /** A task's exit freed a slot. */
  slotFreed(): void;
  /**
   * Which ready tasks an exit should claim in its own write (the agent is
   * full, so the slot it frees is the only room), or null: the slot is
   * reported through {@link slotFreed} and claimed as usual.
   */
  claimOnExit(): ClaimNext | null;
  /** Tasks an exit claimed in its write (`claimOnExit` said how many at most): they run here now. */
  claimedOnExit(claimed: ClaimedTasks, limit: number): void;
  /** The claim `claimOnExit` asked for is settled: its tasks (if any) are in {@link SessionTasks.running}, or (the session closed) their requeue has begun. */
  claimSettled(): void;
}

/** What {@link SessionTasks} needs from the server. */
export interface SessionTasksDeps {
  store: TaskStore & OutputStore & TargetStore;
  machine: TaskMachine;
  hub: TaskHub;
  metrics: Metrics;
}

/**
 * The move a task's exit makes, from the task as stored and the output
 * stored for it: success, failure (with why) or killed; a failure when the
 * server does not hold every chunk the agent says it sent.
 */
export function exitMove(task: TaskRecord, stored: OutputTotals, exit: TaskExit, agent: string): { to: 'success' | 'failure' | 'killed'; context: MoveContext } {
  let to: 'success' | 'failure' | 'killed';
  let failureReason = '';
  let reason = '';
  const stopped = exit.signal !== '' || exit.error !== '';
  if (stored.chunks !== exit.chunks || stored.bytes !== exit.totalBytes) {
    to = 'failure';
    failureReason = `output incomplete: agent sent ${exit.chunks} chunks (${exit.totalBytes} bytes), server holds ${stored.chunks} (${stored.bytes} bytes)`;
  } else if (task.killRequested && stopped) {
    to = 'killed';
    failureReason = exit.signal ? `killed on request (${exit.signal})` : 'killed on request before it started';
  } else if (exit.timedOut) {
    to = 'failure';
    failureReason = `timeout: still running after ${task.timeoutSeconds} s; killed${exit.signal ? ` (${exit.signal})` : ''}`;
  } else if (exit.error !== '') {
    to = 'failure';
    failureReason = `could not start: ${exit.error}`;
  } else if (exit.signal !== '') {
    to = 'failure';
    failureReason = `killed by signal ${exit.signal}`;
  } else if (exit.exitCode === 0) {
    to = 'success';
  } else {
    to = 'failure';
    failureReason = `exited with status ${exit.exitCode ?? 'unknown'}`;
  }
  // A kill the process did not die of (it exited before the signal, or
  // handled it and exited): the exit is what happened.
  if (task.killRequested && !stopped && to !== 'killed') reason = ' (a kill was requested, but the process exited with a status of its own: before the signal, or by handling it)';
  return {
    to,
    context: {
      actor: `agent:${agent}`,
      reason: (failureReason || 'exited with status 0') + reason,
      from: ['running'],
      patch: {
        finished: new Date(),
        exitCode: exit.exitCode ?? null,
        signal: exit.signal,
        failureReason,
        outputBytes: stored.bytes,
        outputDroppedBytes: exit.droppedBytes,
        findings: exit.findings,
      },
    },
  };
}

/** The tasks of one session; see the file comment. */
export class SessionTasks {
  /**
   * Tasks running in this session: claimed by it, or held by the agent and
   * claimed for its boot when it resumed. Only these may get TaskStarted,
   * TaskOutput and TaskExit.
   */
  readonly running = new Set<string>();
  readonly #host: SessionTasksHost;
  readonly #deps: SessionTasksDeps;
  /** Next expected output seq per task (lazily loaded from the store). */
  /** Per running task, the seq and offset its next chunk must have. */
  readonly #next = new Map<string, { seq: number; offset: number }>();
  /** Running tasks this session claimed itself, as claimed: assigned to this agent without asking the store. */
  readonly #claimedHere = new Map<string, TaskRecord>();
  /** Start times not yet written (see {@link started}), by task. */
  readonly #startedPending = new Map<string, Date>();
  #startedTimer: NodeJS.Timeout | undefined;

  constructor(host: SessionTasksHost, deps: SessionTasksDeps) {
    this.#host = host;
    this.#deps = deps;
  }

  /** A task this session claimed: it runs here, assigned to this agent. */
  claimed(task: TaskRecord): void {
    this.running.add(task.id);
    this.#claimedHere.set(task.id, task);
  }

  /** A task the agent holds, claimed for its boot before this session (a resume). */
  held(taskId: string): void {
    this.running.add(taskId);
  }

  /**
   * A task's process started. For a task claimed in this session the time
   * is written with the task's next write, its exit, which for a short task
   * is a few ms away; one still running after STARTED_WRITE_DELAY_MS gets
   * its own write then (#writeStarted). Either way one write fewer per
   * short task, and a task's start is never more than that late in the store.
   */
  async started(started: TaskStarted): Promise<void> {
    if (!this.running.has(started.taskId)) return this.#host.notHeld(started.taskId, 'started');
    const time = started.time ?? new Date();
    const claimed = this.#claimedHere.get(started.taskId);
    if (claimed) {
      this.#deps.metrics.started(claimed, time);
      this.#startedPending.set(started.taskId, time);
      // In the message queue: never between an exit's read and its write.
      this.#startedTimer ??= setTimeout(() => this.#host.later(() => this.#writeStarted(), 'could not record task starts'), STARTED_WRITE_DELAY_MS);
      return;
    }
    const task = await this.#deps.store.patchTask(started.taskId, 'running', { started: time });
    if (!task) return;
    this.#deps.metrics.started(task, time);
    this.#deps.hub.notify(task.id, task);
  }

  /** Writes the start times still pending (tasks running longer than STARTED_WRITE_DELAY_MS, or the stream closed). */
  async #writeStarted(): Promise<void> {
    clearTimeout(this.#startedTimer);
    this.#startedTimer = undefined;
    const pending = [...this.#startedPending];
    this.#startedPending.clear();
    for (const [taskId, time] of pending) {
      const task = await this.#deps.store.patchTask(taskId, 'running', { started: time });
      if (task) this.#deps.hub.notify(task.id, task);
    }
  }

  /** Stores a chunk (once) and acknowledges the highest contiguous seq. */
  async output(output: TaskOutput): Promise<void> {
    const { taskId, seq, data } = output;
    if (!this.running.has(taskId)) return this.#host.notHeld(taskId, 'output');
    if (data.length > MAX_CHUNK_BYTES) {
      throw new InvalidArgumentError(`output chunk of ${data.length} bytes exceeds the ${MAX_CHUNK_BYTES}-byte limit`);
    }
    const expected = await this.#expected(taskId);
    if (seq > expected.seq) {
      throw new InvalidArgumentError(`task ${taskId}: output seq ${seq} arrived before seq ${expected.seq}`);
    }
    if (seq === expected.seq) {
      // Output is one run of bytes from 0: each chunk starts where the last
      // ended (what range reads and the stored counts rely on).
      if (output.offset !== expected.offset) {
        throw new InvalidArgumentError(`task ${taskId}: output chunk ${seq} starts at offset ${output.offset}, not at ${expected.offset} where the output stored so far ends`);
      }
      if (!(await this.#deps.store.putChunkIfRunning({ taskId, seq, offset: output.offset, data: Buffer.from(data) }))) {
        // It ended meanwhile without its exit (given up elsewhere).
        this.forget(taskId);
        return this.#host.notHeld(taskId, 'output');
      }
      this.#deps.metrics.output(data.length);
      this.#next.set(taskId, { seq: seq + 1, offset: output.offset + data.length });
      this.#deps.hub.notify(taskId);
    }
    // seq < expected is a resend of a stored chunk: acknowledge it again.
    this.#host.write({ message: { $case: 'ack', value: { taskId, seq: (this.#next.get(taskId)?.seq ?? 0) - 1, done: false } } });
  }

  async #expected(taskId: string): Promise<{ seq: number; offset: number }> {
    let next = this.#next.get(taskId);
    if (next === undefined) {
      if (!this.#claimedHere.has(taskId)) {
        const task = await this.#deps.store.getTask(taskId);
        if (!task || task.agent !== this.#host.agentName()) {
          throw new PermissionDeniedError(`task ${taskId} is not assigned to agent "${this.#host.agentName()}"`);
        }
      }
      const stored = await this.#deps.store.chunkStats(taskId);
      next = { seq: stored.chunks, offset: stored.bytes };
      this.#next.set(taskId, next);
    }
    return next;
  }

  /** Finishes a task from its exit (with its start time when that is still pending) and acknowledges it as done. */
  async exit(exit: TaskExit): Promise<void> {
    const { taskId } = exit;
    if (!this.running.has(taskId)) return this.#host.notHeld(taskId, 'exit');
    const name = this.#host.agentName();
    // One atomic step reads the task and its stored output and writes the
    // outcome decided from them (every chunk sent before the exit is stored:
    // messages are handled in order).
    let assigned = false as boolean;
    const started = this.#startedPending.get(taskId);
    // A full agent's next ready task is claimed in the same step where the
    // store can (issue 18), instead of in a claim of its own after it.
    const next = this.#host.claimOnExit();
    try {
      const { output, claimed } = await this.#deps.machine.tryMoveDecided(
        taskId,
        (task, stored) => {
          assigned = task.agent === name;
          if (!assigned) return null;
          const move = exitMove(task, stored, exit, name);
          if (started) move.context.patch = { ...move.context.patch, started };
          return move;
        },
        next ?? undefined,
      );
      // Nothing is claimed without the move, and the move needs the task assigned here.
      if (!assigned || !output) throw new PermissionDeniedError(`task ${taskId} is not assigned to agent "${name}"`);
      this.forget(taskId);
      this.#host.write({ message: { $case: 'ack', value: { taskId, seq: output.chunks - 1, done: true } } });
      if (claimed && next) this.#host.claimedOnExit(claimed, next.limit);
      else this.#host.slotFreed();
    } finally {
      // What it claimed is in `running` by now, or its requeue has begun.
      if (next) this.#host.claimSettled();
    }
  }

  /** Stops tracking a task that no longer runs in this session. */
  forget(taskId: string): void {
    this.running.delete(taskId);
    this.#next.delete(taskId);
    this.#claimedHere.delete(taskId);
    this.#startedPending.delete(taskId);
    this.#host.forgotten(taskId);
  }

  /** The stream closed: start times still waiting for their task's exit are written now (after any message being handled). */
  close(): void {
    if (this.#startedPending.size > 0) {
      this.#host.later(() => this.#writeStarted(), 'could not record task starts');
    } else {
      clearTimeout(this.#startedTimer);
    }
  }
}
