/**
 * The task state machine on top of the store: every move is checked against
 * the allowed moves (shared/task-status.ts), made conditional on the current
 * status, recorded as an event, and announced to followers and to the
 * server's listener (the dispatcher for ready tasks, the event publisher).
 */
import { FailedPreconditionError, NotFoundError } from '../shared/errors.js';
import { sourcesOf, type TaskStatus } from '../shared/task-status.js';
import type { Logger } from '../shared/logger.js';
import {
  applyTransition,
  updateTaskWithOutput,
  type ClaimedTasks,
  type ClaimNext,
  type OutputTotals,
  type OutputStore, type TargetStore, type TaskStore,
  type TargetRecord,
  type TaskPatch,
  type TaskRecord,
} from './store/store.js';
import type { TaskHub } from './task-hub.js';

/** Who made a move and why. */
export interface MoveContext {
  actor: string;
  reason: string;
  patch?: TaskPatch;
  /** Only from these statuses (a subset of the allowed sources); default all allowed. */
  from?: readonly TaskStatus[];
}

/** Moves tasks between statuses. */
export class TaskMachine {
  readonly #store: TaskStore & OutputStore & TargetStore;
  readonly #hub: TaskHub;
  readonly #logger: Logger;
  readonly #onChange: (task: TaskRecord, newEvents: number) => void;

  /** `onChange` hears of every change announced, after followers, with how many events it appended. */
  constructor(store: TaskStore & OutputStore & TargetStore, hub: TaskHub, logger: Logger, onChange: (task: TaskRecord, newEvents: number) => void) {
    this.#store = store;
    this.#hub = hub;
    this.#logger = logger;
    this.#onChange = onChange;
  }

  /**
   * Moves the task to `to`. Throws NotFoundError for an unknown task and
   * FailedPreconditionError, naming the current status, for an illegal move.
   */
  async move(id: string, to: TaskStatus, context: MoveContext): Promise<TaskRecord> {
    const moved = await this.tryMove(id, to, context);
    if (moved) return moved;
    const current = await this.#store.getTask(id);
    if (!current) throw new NotFoundError(`task ${id} not found`);
    throw new FailedPreconditionError(`task ${id} is ${current.status}; it cannot become ${to}`);
  }

  /** Like {@link move}, but returns null instead of throwing when the move does not apply. */
  async tryMove(id: string, to: TaskStatus, context: MoveContext): Promise<TaskRecord | null> {
    const allowed = sourcesOf(to);
    const from = context.from ? context.from.filter((s) => allowed.includes(s)) : allowed;
    const task = await this.#store.transition({
      id,
      from,
      to,
      patch: context.patch,
      actor: context.actor,
      reason: context.reason,
      time: new Date(),
    });
    if (task) this.announce(task);
    return task;
  }

  /**
   * A move decided from the task as stored and the output stored for it,
   * both read in the same atomic step as the write (one round trip on the
   * embedded store): `decide` returns the move, or null to leave the task
   * as it is. Returns the task after the move (null when none was made) and
   * the output totals `decide` saw (null when the task does not exist).
   *
   * With `claimNext`, a store that can (Store.finishAndClaimNext) also
   * claims that agent's next ready tasks in the same step, when the move
   * was made: `claimed` holds them (announcing them is the caller's); null
   * when nothing was claimed this way, and the caller claims as usual.
   */
  async tryMoveDecided(
    id: string,
    decide: (task: TaskRecord, output: OutputTotals) => { to: TaskStatus; context: MoveContext } | null,
    claimNext?: ClaimNext,
  ): Promise<{ task: TaskRecord | null; output: OutputTotals | null; claimed: ClaimedTasks | null }> {
    let seen: OutputTotals | null = null;
    const mutate = (current: TaskRecord, output: OutputTotals): TaskRecord | null => {
      seen = output;
      const move = decide(current, output);
      if (!move) return null;
      const allowed = sourcesOf(move.to);
      const from = move.context.from ? move.context.from.filter((s) => allowed.includes(s)) : allowed;
      return applyTransition(current, {
        id,
        from,
        to: move.to,
        patch: move.context.patch,
        actor: move.context.actor,
        reason: move.context.reason,
        time: new Date(),
      });
    };
    let task: TaskRecord | null;
    let claimed: ClaimedTasks | null = null;
    if (claimNext && this.#store.finishAndClaimNext) {
      const done = await this.#store.finishAndClaimNext(id, mutate, claimNext);
      task = done.task;
      if (task) claimed = done.claimed;
    } else {
      task = await updateTaskWithOutput(this.#store, id, mutate);
    }
    if (task) this.announce(task);
    return { task, output: seen, claimed };
  }

  /**
   * Routes a new task: to review when it needs any, else straight to ready
   * for its target's agent (or failure when the target is gone). `target`,
   * when the caller has just read it, saves reading it again. Returns null
   * when the task was no longer created (routed already).
   */
  async route(task: TaskRecord, target?: TargetRecord | null): Promise<TaskRecord | null> {
    if (task.review.length === 0 && (target === undefined || (target !== null && target.name !== task.target))) {
      target = await this.#store.getTarget(task.target);
    }
    const { to, context } = firstMove(task, target ?? null);
    return this.tryMove(task.id, to, { ...context, from: ['created'] });
  }

  /**
   * A task being created, already routed (as {@link route} would) on the
   * target it was just checked against: the store gets it with both events
   * in one write, where inserting it and then routing it took two.
   */
  routedNew(task: TaskRecord, target: TargetRecord): TaskRecord {
    const { to, context } = firstMove(task, target);
    const routed = applyTransition(task, { id: task.id, from: ['created'], to, patch: context.patch, actor: context.actor, reason: context.reason, time: task.created });
    if (!routed) throw new Error(`task ${task.id} is ${task.status}, not created`);
    return routed;
  }

  /**
   * Tells followers and the listener about a change (made here or directly
   * in the store) that appended the task's last `newEvents` events.
   */
  announce(task: TaskRecord, newEvents = 1): void {
    const last = task.events[task.events.length - 1];
    this.#logger.debug({ task: task.id, action: last?.action, from: last?.from, to: task.status, actor: last?.actor }, 'task changed');
    this.#hub.notify(task.id, task);
    this.#onChange(task, newEvents);
  }
}

/** The first move of a created task on its target (null: the target is gone). */
function firstMove(task: TaskRecord, target: TargetRecord | null): { to: TaskStatus; context: MoveContext } {
  if (task.review.length > 0) {
    return { to: 'pending-review', context: { actor: 'system', reason: `waiting for review by ${task.review.map((r) => r.group || 'anyone').join(', ')}` } };
  }
  if (!target) {
    return {
      to: 'failure',
      context: {
        actor: 'system',
        reason: 'target was deleted before the task was routed',
        patch: { failureReason: `target "${task.target}" no longer exists`, finished: new Date() },
      },
    };
  }
  return { to: 'ready', context: { actor: 'system', reason: 'no review required', patch: { agent: target.agent } } };
}
