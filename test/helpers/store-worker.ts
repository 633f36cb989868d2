/**
 * Store calls from other threads, for the store contract's concurrency
 * tests. better-sqlite3 is synchronous, so calls through one SqliteStore can
 * never interleave, however many are in flight: a contract test that races
 * them in one thread cannot fail on SQLite. Each worker here opens its own
 * store on the same location (its own SQLite connection to the same file,
 * or its own MongoDB client), waits at a barrier until every worker is
 * ready, then issues all its calls at once; the threads run in parallel, so
 * the store's atomicity is what keeps them apart — the same situation as two
 * server processes on one data directory or one database.
 *
 * The module is both sides: {@link raceStores} runs in the test, and the
 * bottom half runs as the worker.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { TaskStatus } from '../../shared/task-status.js';
import { openStore, type StoreOptions } from '../../server/store/open-store.js';
import type { Store } from '../../server/store/store.js';

/** One worker's calls. */
export type StoreScript =
  /** store.transition(id, [from] -> to) for each id, all at once; yields the new status or null each. */
  | { op: 'transition'; ids: string[]; from: TaskStatus; to: TaskStatus; actor: string }
  /** store.claimNextReady(agent, bootId) from `parallel` loops until none is left; yields the claimed ids. */
  | { op: 'claim'; agent: string; bootId: string; parallel: number }
  /** store.updateTask(id) appending one review group per name, all at once; yields the names. */
  | { op: 'append'; id: string; groups: string[] };

interface Job {
  options: StoreOptions;
  script: StoreScript;
  /** Int32Array over it: [0] becomes 1 when every worker may start. */
  barrier: SharedArrayBuffer;
}

type Reply = { ready: true } | { results: (string | null)[] } | { error: string };

/**
 * Runs each script in a worker thread of its own, each with its own store
 * on `options`, started together; resolves to each script's results, in
 * order. Rejects if any store call threw.
 */
export async function raceStores(options: StoreOptions, scripts: StoreScript[]): Promise<(string | null)[][]> {
  const barrier = new SharedArrayBuffer(4);
  const workers = scripts.map((script) => new Worker(new URL(import.meta.url), { workerData: { options, script, barrier } satisfies Job }));
  const replies = workers.map((worker) => {
    const messages: Reply[] = [];
    const waiters: Array<(r: Reply) => void> = [];
    const push = (r: Reply): void => {
      const w = waiters.shift();
      if (w) w(r);
      else messages.push(r);
    };
    worker.on('message', push);
    worker.on('error', (err) => push({ error: err.stack ?? String(err) }));
    worker.on('exit', (code) => push({ error: `worker exited with ${code} before answering` }));
    return (): Promise<Reply> => (messages.length > 0 ? Promise.resolve(messages.shift()!) : new Promise((resolve) => waiters.push(resolve)));
  });
  try {
    const ready = await Promise.all(replies.map((next) => next()));
    for (const r of ready) if ('error' in r) throw new Error(r.error);
    const flag = new Int32Array(barrier);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    const done = await Promise.all(replies.map((next) => next()));
    return done.map((r) => {
      if ('error' in r) throw new Error(r.error);
      if (!('results' in r)) throw new Error('unexpected reply from a store worker');
      return r.results;
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
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
    case 'append':
      await Promise.all(
        script.groups.map((group) =>
          store.updateTask(script.id, (task) => ({ ...task, review: [...task.review, { group, status: 'pending', reviewer: '', time: null, comment: '' }] })),
        ),
      );
      return script.groups;
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const job = workerData as Job;
  const main = async (): Promise<void> => {
    const store = await openStore(job.options);
    try {
      port.postMessage({ ready: true } satisfies Reply);
      // Block this thread until the test says go, so every worker starts at once.
      Atomics.wait(new Int32Array(job.barrier), 0, 0);
      port.postMessage({ results: await run(store, job.script) } satisfies Reply);
    } finally {
      await store.close();
    }
  };
  main().catch((err: unknown) => port.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Reply));
}
