/**
 * ListTasks and WatchTasks: pages of the tasks a user sees, newest first,
 * and followed lists of them (docs/console.md "Live lists").
 */
import type { ListTasksRequest, ListTasksResponse, WatchTasksRequest, WatchTasksResponse } from '../../gen/taskgate/v1/task.js';
import { InvalidArgumentError } from '../../shared/errors.js';
import { isTerminal, type TaskStatus } from '../../shared/task-status.js';
import { audienceFor, isAdmin, isCreator, maySeeTask, mayUseTarget, pendingReviewsFor } from '../access.js';
import { actorOf, type UserPrincipal } from '../auth.js';
import { statusFromWire, taskToWire } from '../convert.js';
import type { TargetStore, TaskStore, TargetRecord, TaskRecord } from '../store/store.js';
import type { TaskHub } from '../task-hub.js';
import { pageSize, pageToken } from '../validate.js';
import type { UserContext } from '../rpc/core.js';
import { Wakeup } from './wakeup.js';

/** Tasks ListTasks examines per call at most, hidden ones included, before it returns a short page. */
const LIST_SCAN_LIMIT = 5000;
/** Tasks ListTasks reads per store query, at least. */
const LIST_BATCH = 250;

/** How often a followed list re-reads the store for changes other replicas made, in ms. */
const WATCH_POLL_MS = 5000;
/** Open tasks of a followed list re-read per poll, at most, besides its first page. */
const WATCH_RECHECK_LIMIT = 100;
/** Changes a followed list holds (tasks, and their scripts' and messages' bytes) before it gives them up for the next poll. */
const WATCH_PENDING_LIMIT = 1000;
const WATCH_PENDING_BYTES = 16 * 1024 * 1024;

/** ListTasks' and WatchTasks' filters. */
interface TaskFilters {
  statuses: TaskStatus[];
  target: string;
  awaitingMyReview: boolean;
  createdByMe: boolean;
}

/** What a followed list compares to know whether a task changed: its state, not its output. */
function fingerprint(task: TaskRecord): string {
  const reviews = task.review.map((r) => r.status).join(',');
  return `${isTerminal(task.status) ? 'ended' : 'open'}/${task.status}/${task.events.length}/${reviews}/${task.killRequested ? 'k' : ''}`;
}

/** Tasks a followed list remembers, at most; past it, it forgets ended ones (they change no more), the oldest first. */
const WATCH_REMEMBER_LIMIT = 10_000;

/** Keeps a followed list's memory bounded: forgets ended tasks past {@link WATCH_REMEMBER_LIMIT}. */
function forgetEnded(sent: Map<string, string>): void {
  if (sent.size <= WATCH_REMEMBER_LIMIT) return;
  for (const [id, print] of sent) {
    if (sent.size <= WATCH_REMEMBER_LIMIT / 2) return;
    if (print.startsWith('ended/')) sent.delete(id);
  }
}

/** Targets by name, read at most every few seconds (a followed list checks each change against its target). */
class TargetCache {
  readonly #store: TaskStore & TargetStore;
  readonly #targets = new Map<string, { target: TargetRecord | null; at: number }>();

  constructor(store: TaskStore & TargetStore) {
    this.#store = store;
  }

  async get(name: string): Promise<TargetRecord | null> {
    const hit = this.#targets.get(name);
    if (hit && Date.now() - hit.at < WATCH_POLL_MS) return hit.target;
    const target = await this.#store.getTarget(name);
    if (this.#targets.size > 1000) this.#targets.clear();
    this.#targets.set(name, { target, at: Date.now() });
    return target;
  }
}

/** TaskService's ListTasks and WatchTasks. */
export function taskLists(
  store: TaskStore & TargetStore,
  hub: TaskHub,
): {
  listTasks: (req: ListTasksRequest, ctx: UserContext) => Promise<ListTasksResponse>;
  watchTasks: (req: WatchTasksRequest, ctx: UserContext) => AsyncIterable<WatchTasksResponse>;
} {
  /** The targets the user may use now (targets are few: an admin makes each). */
  async function usableTargets(user: UserPrincipal): Promise<TargetRecord[]> {
    const usable: TargetRecord[] = [];
    for (let after = ''; ; ) {
      const batch = await store.listTargets(after, 500);
      for (const target of batch) if (mayUseTarget(user, target)) usable.push(target);
      if (batch.length < 500) return usable;
      after = batch.at(-1)!.name;
    }
  }

  /** ListTasks' and WatchTasks' filters, checked. */
  function filtersOf(req: Pick<ListTasksRequest, 'statuses' | 'target' | 'awaitingMyReview' | 'createdByMe'>): TaskFilters {
    // Deduplicated: a request's length never changes the query's shape or cost.
    let statuses: TaskStatus[] = [...new Set(req.statuses)].map((s) => {
      const status = statusFromWire(s);
      if (!status) throw new InvalidArgumentError(`unknown status value ${s}`);
      return status;
    });
    if (req.awaitingMyReview) statuses = ['pending-review'];
    return { statuses, target: req.target, awaitingMyReview: req.awaitingMyReview, createdByMe: req.createdByMe };
  }

  /** Whether the user sees the task and it passes the filters; `target` is the target of its name now. */
  function matches(user: UserPrincipal, task: TaskRecord, target: TargetRecord | null, filters: TaskFilters): boolean {
    if (filters.statuses.length > 0 && !filters.statuses.includes(task.status)) return false;
    if (filters.target !== '' && task.target !== filters.target) return false;
    if (filters.createdByMe && !isCreator(user, task)) return false;
    if (filters.awaitingMyReview) return pendingReviewsFor(user, task, target).length > 0;
    return maySeeTask(user, task, target);
  }

  /**
   * A page of the tasks the user sees that pass the filters, newest first,
   * from before `cursor`; and the cursor to go on from, empty at the end.
   */
  async function listPage(user: UserPrincipal, filters: TaskFilters, limit: number, cursor: string | undefined): Promise<{ tasks: TaskRecord[]; next: string }> {
    // Visibility is filtered in the store, by audience keys (admins see everything).
    const audience = filters.createdByMe ? [`by:${actorOf(user)}`] : isAdmin(user) ? undefined : audienceFor(user, await usableTargets(user));
    const targets = new Map<string, TargetRecord | null>();
    const visible = async (task: TaskRecord): Promise<boolean> => {
      if (!targets.has(task.target)) targets.set(task.target, await store.getTarget(task.target));
      return matches(user, task, targets.get(task.target) ?? null, filters);
    };
    // The store returns only tasks the caller may see; each is checked again
    // here (and the review inbox is narrower still), so a page may take
    // another read; it stops after LIST_SCAN_LIMIT and returns a short page
    // with a token to go on.
    const page: TaskRecord[] = [];
    let exhausted = false;
    for (let scanned = 0; page.length < limit && scanned < LIST_SCAN_LIMIT; ) {
      // The inbox skips tasks already reviewed: read it in batches of at least LIST_BATCH.
      const batchSize = filters.awaitingMyReview ? Math.max(limit + 1, LIST_BATCH) : limit + 1;
      const batch = await store.listTasks({ statuses: filters.statuses, target: filters.target || undefined, beforeId: cursor, audience, limit: batchSize });
      let examined = 0;
      for (const task of batch) {
        if (page.length === limit) break;
        examined++;
        scanned++;
        cursor = task.id;
        if (await visible(task)) page.push(task);
      }
      if (batch.length < batchSize && examined === batch.length) {
        exhausted = true;
        break;
      }
    }
    return { tasks: page, next: !exhausted && cursor ? cursor : '' };
  }

  async function listTasks(req: ListTasksRequest, { user }: UserContext): Promise<ListTasksResponse> {
    const page = await listPage(user, filtersOf(req), pageSize(req.pageSize, 50), pageToken.decode(req.pageToken) || undefined);
    return { tasks: page.tasks.map(taskToWire), nextPageToken: page.next ? pageToken.encode(page.next) : '' };
  }

  /**
   * A followed list (docs/console.md "Live lists"): the first page, then
   * every change this server makes (told by the hub, with the task as
   * written, so a change costs no read), and every WATCH_POLL_MS a re-read
   * for what other replicas changed.
   */
  async function* watchTasks(req: WatchTasksRequest, ctx: UserContext): AsyncIterable<WatchTasksResponse> {
    const { signal } = ctx;
    const filters = filtersOf(req);
    const limit = pageSize(req.pageSize, 50);
    // The caller's groups can change under an open stream: ctx.user is replaced, and read at each step.
    ctx.recheck = async () => undefined;
    const changed = new Map<string, TaskRecord>();
    const wakeup = new Wakeup();
    let pendingBytes = 0;
    const unsubscribe = hub.subscribeStates((task) => {
      // Far behind (a client that stopped reading): give the changes up; the next poll catches up.
      if (changed.size >= WATCH_PENDING_LIMIT || pendingBytes >= WATCH_PENDING_BYTES) {
        changed.clear();
        pendingBytes = 0;
      }
      changed.set(task.id, task);
      pendingBytes += task.script.length + task.message.length;
      wakeup.wake();
    });
    const targets = new TargetCache(store);
    /** What was sent of each task in the list, by id. */
    const sent = new Map<string, string>();
    try {
      const first = await listPage(ctx.user, filters, limit, undefined);
      for (const task of first.tasks) {
        sent.set(task.id, fingerprint(task));
        yield { event: { $case: 'task', value: taskToWire(task) } };
      }
      yield { event: { $case: 'synced', value: true } };
      let polled = Date.now();
      for (;;) {
        signal.throwIfAborted();
        const tasks = [...changed.values()];
        changed.clear();
        pendingBytes = 0;
        const removed: string[] = [];
        if (Date.now() - polled >= WATCH_POLL_MS) {
          polled = Date.now();
          // Changes made by other replicas: the first page again, and the open tasks of the list beyond it.
          const page = await listPage(ctx.user, filters, limit, undefined);
          const onPage = new Set(page.tasks.map((t) => t.id));
          const open = [...sent].filter(([id, print]) => !print.startsWith('ended/') && !onPage.has(id)).map(([id]) => id).slice(0, WATCH_RECHECK_LIMIT);
          const reread = await Promise.all(open.map((id) => store.getTask(id)));
          tasks.push(...page.tasks);
          reread.forEach((task, i) => (task ? tasks.push(task) : removed.push(open[i]!)));
        }
        for (const task of tasks) {
          if (matches(ctx.user, task, await targets.get(task.target), filters)) {
            const print = fingerprint(task);
            if (sent.get(task.id) === print) continue;
            sent.set(task.id, print);
            yield { event: { $case: 'task', value: taskToWire(task) } };
          } else {
            removed.push(task.id);
          }
        }
        for (const id of removed) if (sent.delete(id)) yield { event: { $case: 'removed', value: id } };
        forgetEnded(sent);
        if (changed.size === 0) await wakeup.wait(Math.max(0, WATCH_POLL_MS - (Date.now() - polled)), signal);
      }
    } finally {
      unsubscribe();
    }
  }

  return { listTasks, watchTasks };
}
