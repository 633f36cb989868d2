/**
 * Store calls from other threads, for the store contract's concurrency
 * tests. better-sqlite3 is synchronous, so calls through one SqliteStore can
 * never interleave, however many are in flight: a contract test that races
 * them in one thread cannot fail on SQLite. Each worker here opens its own
 * store on the same location (its own SQLite connection to the same file,
 * or its own MongoDB client), waits at a barrier until every worker is
 * ready, then issues all its calls at once (test/helpers/thread-race.ts);
 * the threads run in parallel, so the store's atomicity is what keeps them
 * apart — the same situation as two server processes on one data directory
 * or one database.
 *
 * The module is both sides: {@link raceStores} runs in the test, and the
 * bottom half runs as the worker.
 */
import type { TaskStatus } from '../../shared/task-status.js';
import { openStore, type StoreOptions } from '../../server/store/open-store.js';
import { newTaskId } from '../../shared/ids.js';
import { insertRequestAndTask, type Store } from '../../server/store/store.js';
import { taskRecord } from './records.js';
import { raceThreads, serveRace } from './thread-race.js';

/** One worker's calls. */
export type StoreScript =
  /** store.transition(id, [from] -> to) for each id, all at once; yields the new status or null each. */
  | { op: 'transition'; ids: string[]; from: TaskStatus; to: TaskStatus; actor: string }
  /** store.claimNextReady(agent, bootId) from `parallel` loops until none is left; yields the claimed ids. */
  | { op: 'claim'; agent: string; bootId: string; parallel: number }
  /** store.claimNextReady(agent, bootId) `times` times, one after another; yields the claimed id or null each. */
  | { op: 'claimTimes'; agent: string; bootId: string; times: number }
  /**
   * insertRequestAndTask of one request id `times` at once, each with a new
   * task on `target`; yields the id of the task each call was answered with
   * (its own when it bound the id, else the holder's).
   */
  | { op: 'bindTask'; requestId: string; target: string; times: number }
  /** store.updateTask(id) appending one review group per name, all at once; yields the names. */
  | { op: 'append'; id: string; groups: string[] };

interface Job {
  options: StoreOptions;
  script: StoreScript;
}

/**
 * Runs each script in a worker thread of its own, each with its own store
 * on `options`, started together; resolves to each script's results, in
 * order. Rejects if any store call threw.
 */
export function raceStores(options: StoreOptions, scripts: StoreScript[]): Promise<(string | null)[][]> {
  return raceThreads<Job, (string | null)[]>(new URL(import.meta.url), scripts.map((script) => ({ options, script })));
}

async function run(store: Store, script: StoreScript): Promise<(string | null)[]> {
  switch (script.op) {
    case 'transition':
      return Promise.all(
        script.ids.map(async (id) => {
          const after = await store.transition({ id, from: [script.from], to: script.to, actor: script.actor, reason: `to ${script.to}`, time: new Date() });
          return after?.status ?? null;
        }),
      );
    case 'claim': {
      const claimed: string[] = [];
      await Promise.all(
        Array.from({ length: script.parallel }, async () => {
          for (;;) {
            const task = await store.claimNextReady(script.agent, script.bootId, new Date());
            if (!task) return;
            claimed.push(task.id);
          }
        }),
      );
      return claimed;
    }
    case 'claimTimes': {
      const claimed: (string | null)[] = [];
      for (let i = 0; i < script.times; i++) claimed.push((await store.claimNextReady(script.agent, script.bootId, new Date()))?.id ?? null);
      return claimed;
    }
    case 'bindTask':
      return Promise.all(
        Array.from({ length: script.times }, async () => {
          const taskId = newTaskId();
          const created = new Date();
          const record = { caller: 'user:a@x', requestId: script.requestId, method: 'CreateTask', hash: 'h1', taskId, created, expires: new Date(created.getTime() + 60_000), done: false };
          const holder = await insertRequestAndTask(store, record, taskRecord({ id: taskId, target: script.target }));
          return holder?.taskId ?? taskId;
        }),
      );
    case 'append':
      await Promise.all(
        script.groups.map((group) =>
          store.updateTask(script.id, (task) => ({ ...task, review: [...task.review, { group, status: 'pending', reviewer: '', time: null, comment: '' }] })),
        ),
      );
      return script.groups;
  }
}

serveRace<Job, (string | null)[]>(async ({ options, script }) => {
  const store = await openStore(options);
  return { run: () => run(store, script), close: () => store.close() };
});
