/** TaskService: create, review, run and watch tasks; read and follow their output. */
import {
  ReviewDecision,
  type CreateTaskRequest,
  type CreateTaskResponse,
  type GetTaskLogsRequest,
  type GetTaskLogsResponse,
  type GetTaskRequest,
  type GetTaskResponse,
  type KillTaskRequest,
  type KillTaskResponse,
  type ReviewTaskRequest,
  type ReviewTaskResponse,
  type RunTaskRequest,
  type RunTaskResponse,
  TaskServiceService,
  type WatchTaskRequest,
  type WatchTaskResponse,
} from '../../gen/taskgate/v1/task.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../shared/errors.js';
import { newTaskId } from '../../shared/ids.js';
import { MAX_MESSAGE_BYTES, MAX_SCRIPT_BYTES } from '../../shared/limits.js';
import { isTerminal, type TaskStatus } from '../../shared/task-status.js';
import { maySeeTask, mayUseTarget, requireKill, requireRun, requireUseTarget } from '../access.js';
import { actorOf, type UserPrincipal } from '../auth.js';
import { taskToWire } from '../convert.js';
import { applyOnce, bindRequest, bindRequestAndInsert, completeRequest, isRepeat, priorRequest, requestOf } from '../request-ids.js';
import { applyReview, requiredReviews } from '../review.js';
import { applyTransition, unstartedFields, type RequestRecord, type OutputStore, type RequestStore, type TargetStore, type TaskStore, type UserStore, type TargetRecord, type TaskRecord } from '../store/store.js';
import type { Changes, TaskHub } from '../task-hub.js';
import type { TaskMachine } from '../task-machine.js';
import type { NewClaim } from '../agent-session.js';
import { checkSize, checkTimeout, checkType } from '../validate.js';
import type { ServiceSpec, UserContext } from '../rpc/core.js';
import { taskLists } from './task-lists.js';
import { Wakeup } from './wakeup.js';

/** Chunks read from the store per round trip when sending logs, at most. */
const LOG_BATCH = 256;
/** Output bytes a log reader holds at once, at most (plus one chunk); with HTTP/2 buffers a reader that never reads costs about 2 MiB (test/integration/abuse.test.ts). */
const LOG_READ_AHEAD_BYTES = 1024 * 1024;
/** How often a follower re-reads the store without a local notification, in ms. */
const FOLLOW_POLL_MS = 1000;
/** Resolves when the task changes (hub notification), after `pollMs`, or on abort. */
function changeOrTimeout(
  hub: TaskHub,
  id: string,
  signal: AbortSignal,
  pollMs: number,
  changes: Changes,
): { wait: () => Promise<void>; close: () => void; changed: () => boolean } {
  let changed = true;
  const wakeup = new Wakeup();
  const unsubscribe = hub.subscribe(
    id,
    () => {
      changed = true;
      wakeup.wake();
    },
    changes,
  );
  return {
    changed: () => {
      const was = changed;
      changed = false;
      return was;
    },
    close: unsubscribe,
    wait: () => wakeup.wait(pollMs, signal, changed),
  };
}

/** Statuses a kill moves straight to killed: nothing runs yet. */
const NOT_STARTED: readonly TaskStatus[] = ['created', 'pending-review', 'approved', 'ready'];

/** What CreateTask checked of a request: the target, and the type and time limit the task gets. */
interface CreateChecks {
  target: TargetRecord;
  type: string;
  timeoutSeconds: number;
}

/**
 * Claims a new ready task for its agent in the write that creates it, when
 * the agent's session on this server can take it at once (Dispatcher.claimNew);
 * null: insert it ready.
 */
export type ClaimNew = (task: TaskRecord, target: TargetRecord) => NewClaim | null;

/**
 * The TaskService implementation. `onKillRequested` is told when a running
 * task's kill was recorded, so the server holding its agent's stream sends it.
 */
export function taskService(
  store: TaskStore & OutputStore & TargetStore & UserStore & RequestStore,
  machine: TaskMachine,
  hub: TaskHub,
  onKillRequested: (task: TaskRecord) => void,
  claimNew: ClaimNew = () => null,
): ServiceSpec<typeof TaskServiceService> {
  /** The target a new task is made on, its type and time limit; throws when the user may not make it. */
  function checkCreate(req: CreateTaskRequest, user: UserPrincipal, target: TargetRecord | null): CreateChecks {
    if (!target) throw new NotFoundError(`target "${req.target}" not found`);
    requireUseTarget(user, target);
    if (!target.active) throw new FailedPreconditionError(`target "${target.name}" is inactive and takes no new tasks`);
    const type = checkType('type', req.type === '' ? target.type : req.type);
    const timeoutSeconds = checkTimeout('timeout_seconds', req.timeoutSeconds) || target.timeoutSeconds;
    if (type !== target.type && !target.allowTypeOverride) {
      throw new PermissionDeniedError(`target "${target.name}" runs ${target.type} only; it does not allow type override`);
    }
    return { target, type, timeoutSeconds };
  }

  async function createTask(req: CreateTaskRequest, { user }: UserContext): Promise<CreateTaskResponse> {
    if (req.target === '') throw new InvalidArgumentError('target is required');
    if (req.script.trim() === '') throw new InvalidArgumentError('script must not be empty');
    checkSize('script', req.script, MAX_SCRIPT_BYTES);
    checkSize('message', req.message, MAX_MESSAGE_BYTES);
    const actor = actorOf(user);
    const request = requestOf(actor, 'CreateTask', req.requestId, [req.target, req.script, req.message, req.type, req.timeoutSeconds]);
    const target = await store.getTarget(req.target);
    let checked: CreateChecks;
    try {
      checked = checkCreate(req, user, target);
    } catch (err) {
      // A repeat is answered with the task the first call made, whatever
      // changed since (the target's rules included): looked up only here,
      // so a first call costs no read of its request id.
      const prior = await priorRequest(store, request);
      const made = prior && (await store.getTask(prior.taskId));
      if (made) return { task: taskToWire(await madeBefore(made)) };
      throw err;
    }
    const now = new Date();
    /** The new task under `id`, routed, and claimed where its agent's session here can take it at once. */
    const prepare = (id: string): { task: TaskRecord; claim: NewClaim | null } => {
      const created: TaskRecord = {
        id,
        created: now,
        message: req.message,
        script: req.script,
        type: checked.type,
        target: checked.target.name,
        ...(checked.target.uid ? { targetUid: checked.target.uid } : {}),
        status: 'created',
        createdBy: actor,
        ...unstartedFields(),
        timeoutSeconds: checked.timeoutSeconds,
        createdByGroups: [...user.groups],
        review: requiredReviews(checked.target),
        distinctReviewers: checked.target.review === 'team' && checked.target.distinctReviewers,
        events: [{ time: now, actor, action: 'task.created', from: null, to: 'created', reason: 'created' }],
        ...(request ? { requestId: request.requestId } : {}),
      };
      // Inserted routed (to review or to ready), created and routed in one
      // write; a ready task whose agent's session here can take it at once is
      // inserted claimed as well (created, ready, running: three events).
      const routed = machine.routedNew(created, checked.target);
      const claim = claimNew(routed, checked.target);
      return { task: claim?.task ?? routed, claim };
    };
    /** Inserts the task (with the binding first); null when a binding held the id instead. */
    const insert = async (made: { task: TaskRecord; claim: NewClaim | null }, bind: boolean): Promise<RequestRecord | null> => {
      let holder: RequestRecord | null = null;
      try {
        if (bind && request) holder = await bindRequestAndInsert(store, request, made.task);
        else await store.insertTask(made.task);
      } catch (err) {
        made.claim?.failed();
        throw err;
      }
      if (holder) {
        made.claim?.failed();
        return holder;
      }
      machine.announce(made.task, made.task.events.length);
      made.claim?.inserted();
      return null;
    };
    /** The task a racing call with the same request id inserted under `id`, or null. */
    const raced = async (err: unknown, id: string): Promise<TaskRecord | null> => {
      if (!request || !(err instanceof AlreadyExistsError)) return null;
      const found = await store.getTask(id);
      return found?.requestId === request.requestId && found.createdBy === actor ? found : null;
    };
    // Binding the request id fixes the task's id, so racing repeats insert
    // one task; the binding is looked up first, in the same store step as
    // the insert where the store can, so a repeat inserts nothing.
    const first = prepare(newTaskId());
    let holder: RequestRecord | null;
    try {
      holder = await insert(first, true);
    } catch (err) {
      const other = await raced(err, first.task.id);
      if (!other) throw err;
      return { task: taskToWire(await madeBefore(other)) };
    }
    if (!holder) return { task: taskToWire(first.task) };
    const made = await store.getTask(holder.taskId);
    if (made) return { task: taskToWire(await madeBefore(made)) };
    // Bound by a call that has not inserted its task (yet), or could not:
    // inserted here under the id bound; of racing inserts one wins.
    const second = prepare(holder.taskId);
    try {
      await insert(second, false);
    } catch (err) {
      const other = await raced(err, second.task.id);
      if (!other) throw err;
      return { task: taskToWire(await madeBefore(other)) };
    }
    return { task: taskToWire(second.task) };
  }

  /**
   * A task an earlier call with the same request id made, as it is now;
   * routed first if that call stopped before it could (routing is
   * conditional on "created", so racing calls route it once).
   */
  async function madeBefore(task: TaskRecord): Promise<TaskRecord> {
    if (task.status !== 'created') return task;
    return (await machine.route(task)) ?? (await store.getTask(task.id)) ?? task;
  }

  /** The task if the user may see it; NOT_FOUND otherwise, so hidden tasks do not reveal themselves. */
  async function visibleTask(user: UserPrincipal, id: string): Promise<TaskRecord> {
    if (id === '') throw new InvalidArgumentError('id is required');
    const task = await store.getTask(id);
    if (!task || !maySeeTask(user, task, await store.getTarget(task.target))) throw new NotFoundError(`task ${id} not found`);
    return task;
  }

  async function getTask(req: GetTaskRequest, { user }: UserContext): Promise<GetTaskResponse> {
    return { task: taskToWire(await visibleTask(user, req.id)) };
  }

  async function reviewTask(req: ReviewTaskRequest, { user }: UserContext): Promise<ReviewTaskResponse> {
    const decision =
      req.decision === ReviewDecision.REVIEW_DECISION_APPROVE ? 'approve' : req.decision === ReviewDecision.REVIEW_DECISION_REJECT ? 'reject' : undefined;
    if (!decision) throw new InvalidArgumentError('decision must be APPROVE or REJECT');
    checkSize('comment', req.comment, MAX_MESSAGE_BYTES);
    const request = requestOf(actorOf(user), 'ReviewTask', req.requestId, [req.id, req.decision, req.group, req.comment]);
    const prior = await priorRequest(store, request);
    const seen = await visibleTask(user, req.id);
    // A repeat decides nothing again, and is not refused because the first
    // call decided (a rejected task; no group of the caller's left pending).
    if (isRepeat(prior, seen, request)) {
      await completeRequest(store, request);
      return { task: taskToWire(seen) };
    }
    const target = await store.getTarget(seen.target);
    const input = { decision, group: req.group, comment: req.comment, time: new Date() } as const;
    // Refusals (the creator, a finished task, ...) come before the id is bound.
    applyReview(seen, user, input, target);
    if (!prior) await bindRequest(store, request, seen.id);
    const result = await applyOnce(store, req.id, request, (task) => applyReview(task, user, input, target));
    if (result?.applied) machine.announce(result.task);
    await completeRequest(store, request);
    return { task: taskToWire(result?.task ?? (await visibleTask(user, req.id))) };
  }

  async function runTask(req: RunTaskRequest, { user }: UserContext): Promise<RunTaskResponse> {
    const request = requestOf(actorOf(user), 'RunTask', req.requestId, [req.id]);
    const prior = await priorRequest(store, request);
    const task = await visibleTask(user, req.id);
    requireRun(user, task);
    // A repeat: the task as it is (ready, running or ended), not FAILED_PRECONDITION.
    if (isRepeat(prior, task, request)) {
      await completeRequest(store, request);
      return { task: taskToWire(task) };
    }
    if (task.status !== 'approved') {
      throw new FailedPreconditionError(
        task.status === 'pending-review'
          ? `task ${task.id} is still pending-review; it needs approval by ${task.review.filter((r) => r.status === 'pending').map((r) => r.group || 'anyone').join(', ')}`
          : `task ${task.id} is ${task.status}; only an approved task can be run`,
      );
    }
    const target = await store.getTarget(task.target);
    if (!target) throw new FailedPreconditionError(`target "${task.target}" no longer exists`);
    if (!target.active) throw new FailedPreconditionError(`target "${target.name}" is inactive; activate it to run tasks`);
    await requireCreatorMayStillUse(task, target);
    if (!prior) await bindRequest(store, request, task.id);
    const move = {
      id: task.id,
      from: ['approved'],
      to: 'ready',
      patch: { agent: target.agent },
      actor: actorOf(user),
      reason: 'run after approval',
      time: new Date(),
    } as const;
    const result = await applyOnce(store, task.id, request, (t) => applyTransition(t, move));
    if (!result) {
      const current = await store.getTask(task.id);
      throw new FailedPreconditionError(`task ${task.id} is ${current?.status ?? 'gone'}; it cannot become ready`);
    }
    if (result.applied) machine.announce(result.task);
    await completeRequest(store, request);
    return { task: taskToWire(result.task) };
  }

  /**
   * The creator's rights are checked again when an approved task is run:
   * groups change between creation and run (days, with a review between),
   * and a task runs as its creator's request, whoever presses run.
   */
  async function requireCreatorMayStillUse(task: TaskRecord, target: TargetRecord): Promise<void> {
    const email = task.createdBy.startsWith('user:') ? task.createdBy.slice('user:'.length) : '';
    const creator = email === '' ? null : await store.getUser(email);
    if (!creator?.active) {
      throw new FailedPreconditionError(`task ${task.id} was created by ${task.createdBy}, who is no longer an active user; create it again`);
    }
    const principal: UserPrincipal = { kind: 'user', email: creator.email, groups: creator.groups, tokenId: '' };
    if (!mayUseTarget(principal, target)) {
      throw new PermissionDeniedError(
        `task ${task.id} was created by ${task.createdBy}, who may no longer use target "${target.name}" (it is for ${target.groups.join(', ')}); they must be in one of those groups for it to run`,
      );
    }
  }

  async function killTask(req: KillTaskRequest, { user }: UserContext): Promise<KillTaskResponse> {
    checkSize('reason', req.reason, MAX_MESSAGE_BYTES);
    const request = requestOf(actorOf(user), 'KillTask', req.requestId, [req.id, req.reason]);
    const prior = await priorRequest(store, request);
    const task = await visibleTask(user, req.id);
    requireKill(user, task);
    if (isRepeat(prior, task, request)) {
      // Cut off after recording the kill, maybe before sending it: send it (again).
      if (!prior?.done && task.status === 'running') onKillRequested(task);
      await completeRequest(store, request);
      return { task: taskToWire(task) };
    }
    const actor = actorOf(user);
    const why = req.reason === '' ? '' : `: ${req.reason}`;
    const now = new Date();
    // Not started: killed at once, nothing runs. Running: record the request
    // (once) in the task; the agent confirms.
    const kill = (t: TaskRecord): TaskRecord | null => {
      if (NOT_STARTED.includes(t.status)) {
        const patch = { finished: now, failureReason: `killed by ${actor} before it ran${why}` };
        return applyTransition(t, { id: t.id, from: NOT_STARTED, to: 'killed', patch, actor, reason: `killed before it ran${why}`, time: now });
      }
      if (t.status !== 'running' || t.killRequested) return null;
      const event = { time: now, actor, action: 'task.kill-requested', from: t.status, to: t.status, reason: `kill requested${why}` };
      return { ...t, killRequested: now, events: [...t.events, event] };
    };
    if (!kill(task) && task.status !== 'running') throw new FailedPreconditionError(`task ${task.id} is ${task.status}; there is nothing to kill`);
    if (!prior) await bindRequest(store, request, task.id);
    const result = await applyOnce(store, task.id, request, kill);
    if (result?.applied) machine.announce(result.task);
    const current = result?.task ?? (await visibleTask(user, req.id));
    if (current.status === 'running') {
      onKillRequested(current); // asked again: send it again
    } else if (!result) {
      throw new FailedPreconditionError(`task ${current.id} is ${current.status}; there is nothing to kill`);
    }
    await completeRequest(store, request);
    return { task: taskToWire(current) };
  }

  async function* watchTask(req: WatchTaskRequest, ctx: UserContext): AsyncIterable<WatchTaskResponse> {
    const { signal } = ctx;
    await visibleTask(ctx.user, req.id);
    ctx.recheck = async (user) => void (await visibleTask(user, req.id));
    // Its state only: a running task's output changes nothing WatchTask sends
    // (output_bytes is set when it ends), and a watcher re-read the task for
    // every stored chunk.
    const changes = changeOrTimeout(hub, req.id, signal, FOLLOW_POLL_MS, 'state');
    try {
      let sent = '';
      for (;;) {
        signal.throwIfAborted();
        changes.changed();
        const task = await store.getTask(req.id);
        if (!task) throw new NotFoundError(`task ${req.id} not found`);
        const fingerprint = `${task.status}/${task.events.length}/${task.started?.getTime() ?? ''}/${task.outputBytes}`;
        if (fingerprint !== sent) {
          sent = fingerprint;
          yield { task: taskToWire(task) };
        }
        if (isTerminal(task.status)) return;
        await changes.wait();
      }
    } finally {
      changes.close();
    }
  }

  async function* getTaskLogs(req: GetTaskLogsRequest, ctx: UserContext): AsyncIterable<GetTaskLogsResponse> {
    const { signal } = ctx;
    if (req.offset < 0) throw new InvalidArgumentError('offset must not be negative');
    if (req.limitBytes < 0) throw new InvalidArgumentError('limit_bytes must not be negative (0: no limit)');
    if (req.tailBytes < 0) throw new InvalidArgumentError('tail_bytes must not be negative (0: start at offset)');
    let left = req.limitBytes === 0 ? Infinity : req.limitBytes;
    await visibleTask(ctx.user, req.id);
    if (req.tailBytes > 0) req = { ...req, offset: Math.max(0, (await store.chunkStats(req.id)).bytes - req.tailBytes) };
    ctx.recheck = async (user) => void (await visibleTask(user, req.id));
    // Subscribe before the first read so no change between a read and the
    // wait is missed.
    const changes = changeOrTimeout(hub, req.id, signal, FOLLOW_POLL_MS, 'all');
    try {
      let lastSeq = -1;
      let first = true;
      for (;;) {
        signal.throwIfAborted();
        changes.changed();
        // Status first: a task is finished only once every chunk is stored,
        // so after seeing a terminal status, one more read gets them all.
        const task = await store.getTask(req.id);
        if (!task) throw new NotFoundError(`task ${req.id} not found`);
        const chunks = await store.readChunks(req.id, first ? { fromOffset: req.offset } : { afterSeq: lastSeq }, LOG_BATCH, LOG_READ_AHEAD_BYTES);
        first = false;
        let bytes = 0;
        for (const chunk of chunks) {
          const skip = Math.max(0, req.offset - chunk.offset);
          lastSeq = chunk.seq;
          bytes += chunk.data.length;
          if (skip >= chunk.data.length) continue;
          const data = chunk.data.subarray(skip, skip + left);
          left -= data.length;
          yield { event: { $case: 'chunk', value: { offset: chunk.offset + skip, data } } };
          // A range read (limit_bytes) ends where its limit does, without `finished`.
          if (left === 0) return;
        }
        // A full read: more may be there.
        if (chunks.length === LOG_BATCH || bytes >= LOG_READ_AHEAD_BYTES) continue;
        if (isTerminal(task.status)) {
          if (chunks.length > 0) continue;
          yield { event: { $case: 'finished', value: taskToWire(task) } };
          return;
        }
        if (!req.follow) return;
        if (chunks.length > 0) continue;
        await changes.wait();
      }
    } finally {
      changes.close();
    }
  }

  const { listTasks, watchTasks } = taskLists(store, hub);

  return {
    definition: TaskServiceService,
    access: {
      createTask: 'user',
      getTask: 'user',
      listTasks: 'user',
      reviewTask: 'user',
      runTask: 'user',
      killTask: 'user',
      watchTask: 'user',
      getTaskLogs: 'user',
      watchTasks: 'user',
    },
    methods: { createTask, getTask, listTasks, reviewTask, runTask, killTask, watchTask, getTaskLogs, watchTasks },
  };
}
