/**
 * Calls raced from worker threads, each with its own store on one location
 * (its own SQLite connection to the same file, or its own MongoDB client):
 * the situation of several server processes on one database. Every worker
 * gets ready (opens its store), waits at a barrier until all are, then runs
 * at once; the threads run in parallel, so the store's atomicity is what
 * keeps them apart.
 *
 * A worker module calls {@link serveRace} when it runs as a worker, and its
 * test side calls {@link raceThreads} with that module's URL.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

type Reply<R> = { ready: true } | { result: R } | { error: string };

/** What a worker gets: its job, and the barrier (an Int32Array whose [0] becomes 1 when every worker may start). */
interface Envelope<J> {
  job: J;
  barrier: SharedArrayBuffer;
}

/**
 * Runs one worker of `module` per job, started together; resolves to each
 * one's result, in order. Rejects if any worker threw or exited early.
 */
export async function raceThreads<J, R>(module: URL, jobs: readonly J[]): Promise<R[]> {
  const barrier = new SharedArrayBuffer(4);
  const workers = jobs.map((job) => new Worker(module, { workerData: { job, barrier } satisfies Envelope<J> }));
  const replies = workers.map((worker) => {
    const messages: Reply<R>[] = [];
    const waiters: Array<(r: Reply<R>) => void> = [];
    const push = (r: Reply<R>): void => {
      const w = waiters.shift();
      if (w) w(r);
      else messages.push(r);
    };
    worker.on('message', push);
    worker.on('error', (err) => push({ error: err.stack ?? String(err) }));
    worker.on('exit', (code) => push({ error: `worker exited with ${code} before answering` }));
    return (): Promise<Reply<R>> => (messages.length > 0 ? Promise.resolve(messages.shift()!) : new Promise((resolve) => waiters.push(resolve)));
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
      if (!('result' in r)) throw new Error('unexpected reply from a racing worker');
      return r.result;
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * The worker side, when this thread is a worker: `prepare` gets ready for
 * its job (opens a store, say) and returns the raced call and what to close
 * after it. Does nothing on the main thread.
 */
export function serveRace<J, R>(prepare: (job: J) => Promise<{ run: () => Promise<R>; close: () => Promise<void> }>): void {
  if (isMainThread || !parentPort) return;
  const port = parentPort;
  const { job, barrier } = workerData as Envelope<J>;
  const main = async (): Promise<void> => {
    const { run, close } = await prepare(job);
    try {
      port.postMessage({ ready: true } satisfies Reply<R>);
      // Block this thread until the test says go, so every worker starts at once.
      Atomics.wait(new Int32Array(barrier), 0, 0);
      port.postMessage({ result: await run() } satisfies Reply<R>);
    } finally {
      await close();
    }
  };
  main().catch((err: unknown) => port.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Reply<R>));
}
