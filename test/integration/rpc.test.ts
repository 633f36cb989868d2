/**
 * The RPC layer as clients see it (docs/design.md "The RPC layer"): a
 * stream ends UNAVAILABLE when the server stops (so a follower knows to
 * follow again, not that the task finished), CANCELLED and
 * DEADLINE_EXCEEDED are statuses of their own and never logged as bugs,
 * and every call is counted by method and status.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import type { Logger } from '../../shared/logger.js';
import type { GetTaskLogsResponse, WatchTaskResponse } from '../../gen/taskgate/v1/task.js';
import { eventually } from '../helpers/eventually.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

/** Log lines the server wrote, parsed. */
type Line = { level: number; msg: string; method?: string };

function capturingLogger(lines: Line[]): Logger {
  return pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
}

/** Reads a stream to its end; resolves with its error (undefined when it ended OK). */
async function ending(stream: AsyncIterable<unknown>): Promise<ServiceError | undefined> {
  try {
    const iterator = stream[Symbol.asyncIterator]();
    while (!(await iterator.next()).done) {
      // reading on
    }
    return undefined;
  } catch (err) {
    return err as ServiceError;
  }
}

describe('RPC layer', function () {
  let h: Harness;
  const lines: Line[] = [];

  /** The taskgate_rpc_handled_total count of one method and code. */
  async function handled(method: string, code: string): Promise<number> {
    const metric = await h.server.metrics.registry.getSingleMetric('taskgate_rpc_handled_total')!.get();
    return metric.values.find((v) => v.labels.method === method && v.labels.code === code)?.value ?? 0;
  }

  /** A task that waits for review: its followers wait as long as the test likes. */
  async function waitingTask(): Promise<string> {
    return (await h.createTask('reviewed', 'echo never')).id;
  }

  beforeEach(async () => {
    lines.length = 0;
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!, { logger: capturingLogger(lines) });
    await h.createTarget('reviewed', 'a1', 'bash', { review: 2 /* ANY */ });
  });

  afterEach(async () => {
    await h?.close();
  });

  it('ends log followers and watchers with UNAVAILABLE "server stopping; follow again" when the server stops', async () => {
    const id = await waitingTask();
    const follower = h.api.tasks.getTaskLogs({ id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
    const watcher = h.api.tasks.watchTask({ id }, h.api.metadata);
    const watched: WatchTaskResponse[] = [];
    watcher.on('data', (m: WatchTaskResponse) => watched.push(m));
    await eventually('the watcher sees the task', async () => watched.length > 0);
    const ends = Promise.all([ending(follower as AsyncIterable<GetTaskLogsResponse>), new Promise<ServiceError>((resolve) => watcher.on('error', resolve))]);
    await h.server.stop();
    const [followed, watchedEnd] = await ends;
    expect(followed?.code, followed?.message).to.equal(status.UNAVAILABLE);
    expect(followed?.details).to.equal('server stopping; follow again');
    expect(watchedEnd.code).to.equal(status.UNAVAILABLE);
    expect(watchedEnd.details).to.equal('server stopping; follow again');
  });

  it('counts a stream the client cancelled as CANCELLED, and logs no error for it', async () => {
    const id = await waitingTask();
    const watcher = h.api.tasks.watchTask({ id }, h.api.metadata);
    // The first message says the server is in its wait loop.
    await new Promise((resolve) => watcher.once('data', resolve));
    watcher.cancel();
    expect((await ending(watcher as AsyncIterable<unknown>))?.code).to.equal(status.CANCELLED);
    await eventually('the server counts the cancel', async () => (await handled('TaskService/WatchTask', 'CANCELLED')) === 1);
    expect(lines.filter((l) => l.level >= 50)).to.deep.equal([]);
  });

  it('ends a follower past its deadline with DEADLINE_EXCEEDED on both sides', async () => {
    const id = await waitingTask();
    const follower = h.api.tasks.getTaskLogs({ id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata, { deadline: Date.now() + 300 });
    expect((await ending(follower as AsyncIterable<unknown>))?.code).to.equal(status.DEADLINE_EXCEEDED);
    await eventually('the server counts the deadline', async () => (await handled('TaskService/GetTaskLogs', 'DEADLINE_EXCEEDED')) === 1);
    expect(lines.filter((l) => l.level >= 50)).to.deep.equal([]);
  });

  it('counts unary calls by method and status', async () => {
    const id = await waitingTask();
    await h.getTask(id);
    const missing = await h.getTask('01ZZZZZZZZZZZZZZZZZZZZZZZZ').catch((err: ServiceError) => err);
    expect((missing as ServiceError).code).to.equal(status.NOT_FOUND);
    expect(await handled('TaskService/GetTask', 'OK')).to.equal(1);
    expect(await handled('TaskService/GetTask', 'NOT_FOUND')).to.equal(1);
  });

  it('still ends a stream that finished with OK', async () => {
    const id = await waitingTask();
    const logs = h.api.tasks.getTaskLogs({ id, offset: 0, follow: false, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
    expect(await ending(logs as AsyncIterable<unknown>)).to.equal(undefined);
    await eventually('the server counts it', async () => (await handled('TaskService/GetTaskLogs', 'OK')) === 1);
  });
});
