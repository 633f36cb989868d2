/**
 * The RPC layer as clients see it (docs/design.md "The RPC layer"): a
 * stream ends UNAVAILABLE when the server stops (so a follower knows to
 * follow again, not that the task finished), CANCELLED and
 * DEADLINE_EXCEEDED are statuses of their own and never logged as bugs,
 * and every call is counted by method and status.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../../shared/logger.js';
import { TaskStatus, type GetTaskLogsResponse, type WatchTaskResponse } from '../../gen/taskgate/v1/task.js';
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

  it('has a watcher read the task at its state changes, not at every stored chunk of its output', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'taskgate-rpc-'));
    chmodSync(dir, 0o711); // agent work dirs inside: tasks run as users of their own
    try {
      await h.createTarget('plain', 'a1');
      // 1 KiB chunks: seq's 1.3 MB comes as about 1,300 chunks.
      await h.startAgent('a1', { workDir: join(dir, 'a1'), maxChunkBytes: 1024 });
      const getTasks = async (): Promise<number> => {
        const metric = await h.server.metrics.registry.getSingleMetric('taskgate_store_operation_seconds')!.get();
        return (metric.values as Array<{ metricName?: string; labels: Record<string, unknown>; value: number }>).find((v) => v.metricName === 'taskgate_store_operation_seconds_count' && v.labels.op === 'getTask')?.value ?? 0;
      };
      const task = await h.createTask('plain', 'seq 1 200000');
      const before = await getTasks();
      const watcher = h.api.tasks.watchTask({ id: task.id }, h.api.metadata);
      const seen: WatchTaskResponse[] = [];
      watcher.on('data', (m: WatchTaskResponse) => seen.push(m));
      await ending(watcher as AsyncIterable<unknown>);
      const reads = (await getTasks()) - before;
      const chunks = (await h.store.chunkStats(task.id)).chunks;
      expect(seen.at(-1)?.task?.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect(chunks).to.be.above(500);
      // The opening check, one read per state it saw, and a few polls (its 1 s timer).
      expect(reads, `${reads} task reads for ${chunks} chunks`).to.be.below(20);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
