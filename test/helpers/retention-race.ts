/**
 * Retention passes racing, each in a worker thread of its own with its own
 * store on one location (its own SQLite connection to the same file, or its
 * own MongoDB client): the situation of several server replicas on one
 * database. As in test/helpers/store-worker.ts, every worker waits at a
 * barrier until all are ready, so the passes start together.
 *
 * The module is both sides: {@link raceRetention} runs in the test, the
 * bottom half runs as the worker.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { silentLogger } from '../../shared/logger.js';
import { Metrics } from '../../server/metrics.js';
import { Retention, type RetentionOptions, type RetentionTotals } from '../../server/retention.js';
import { openStore, type StoreOptions } from '../../server/store/open-store.js';

interface Job {
  options: StoreOptions;
  retention: RetentionOptions;
  /** Int32Array over it: [0] becomes 1 when every worker may start. */
  barrier: SharedArrayBuffer;
}

type Reply = { ready: true } | { totals: RetentionTotals } | { error: string };

/**
 * Runs `passes` retention passes at once, one per worker, each with its own
 * store on `options`; resolves to what each pass deleted. Rejects if any
 * pass threw.
 */
export async function raceRetention(options: StoreOptions, retention: RetentionOptions, passes: number): Promise<RetentionTotals[]> {
  const barrier = new SharedArrayBuffer(4);
  const workers = Array.from({ length: passes }, () => new Worker(new URL(import.meta.url), { workerData: { options, retention, barrier } satisfies Job }));
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
      if (!('totals' in r)) throw new Error('unexpected reply from a retention worker');
      return r.totals;
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const job = workerData as Job;
  const main = async (): Promise<void> => {
    const store = await openStore(job.options);
    try {
      const retention = new Retention(store, silentLogger(), new Metrics({ store: () => store, connectedAgents: () => 0 }), job.retention);
      port.postMessage({ ready: true } satisfies Reply);
      // Block this thread until the test says go, so every pass starts at once.
      Atomics.wait(new Int32Array(job.barrier), 0, 0);
      port.postMessage({ totals: await retention.pass() } satisfies Reply);
    } finally {
      await store.close();
    }
  };
  main().catch((err: unknown) => port.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Reply));
}
