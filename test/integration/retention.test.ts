/**
 * Retention (`--retain`; docs/operations.md "Retention"): on both stores,
 * what is deleted and what is kept, the bounds of a batch, and passes racing
 * in parallel (worker threads with stores of their own, as replicas would);
 * then the documented command on a data directory seeded with tasks that
 * ended 40 days ago and yesterday, checked over the API.
 */
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListEventsRequest } from '../../gen/taskgate/v1/event.js';
import { Api, isServiceError } from '../../cli/client.js';
import { silentLogger } from '../../shared/logger.js';
import type { TaskStatus } from '../../shared/task-status.js';
import { Metrics } from '../../server/metrics.js';
import { compileServerOptions } from '../../server/options.js';
import { formatRetention, parseRetention, Retention } from '../../server/retention.js';
import { openStore } from '../../server/store/open-store.js';
import { insertEvents, markPublished, taskAuditEvent, type Store, type TaskEventRecord, type TaskRecord } from '../../server/store/store.js';
import { CliProcess } from '../helpers/processes.js';
import { raceRetention } from '../helpers/retention-race.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';
import { taskRecord } from '../helpers/records.js';

const DAY = 86_400_000;
const RETAIN_MS = 30 * DAY;
const daysAgo = (days: number): Date => new Date(Date.now() - days * DAY);

/** How a seeded task looks. */
interface Seed {
  status: TaskStatus;
  /** When it was created and (for a task that ran and ended) finished, in days ago. */
  created: number;
  finished?: number;
  /** A rejected task: the days ago of its rejection (no `finished`). */
  rejected?: number;
  chunks?: number;
  /** Leave its last event unpublished. */
  unpublished?: boolean;
}

function taskFrom(seed: Seed): TaskRecord {
  const created = daysAgo(seed.created);
  const actor = 'user:dev@test';
  const events: TaskEventRecord[] = [{ time: created, actor, action: 'task.created', from: null, to: 'created', reason: 'created' }];
  const finished = seed.finished === undefined ? null : daysAgo(seed.finished);
  const review = seed.status === 'pending-review' || seed.rejected !== undefined;
  if (review) events.push({ time: created, actor: 'system', action: 'task.pending-review', from: 'created', to: 'pending-review', reason: 'review required' });
  if (seed.rejected !== undefined) {
    events.push({ time: daysAgo(seed.rejected), actor: 'user:boss@test', action: 'task.rejected', from: 'pending-review', to: 'rejected', reason: 'rejected by user:boss@test' });
  } else if (seed.status !== 'created' && seed.status !== 'pending-review') {
    events.push({ time: created, actor: 'system', action: 'task.ready', from: 'created', to: 'ready', reason: 'no review required' });
    if (seed.status !== 'ready') events.push({ time: created, actor: 'agent:a1', action: 'task.running', from: 'ready', to: 'running', reason: 'handed to agent' });
    if (finished) events.push({ time: finished, actor: 'agent:a1', action: `task.${seed.status}`, from: 'running', to: seed.status, reason: 'exit 0' });
  }
  return taskRecord({
    created,
    script: 'echo hi',
    status: seed.status,
    createdBy: actor,
    agent: 'a1',
    started: seed.status === 'running' || finished ? created : null,
    finished,
    exitCode: finished ? 0 : null,
    createdByGroups: ['devs'],
    review: review ? [{ group: 'ops', status: seed.rejected === undefined ? 'pending' : 'rejected', reviewer: '', time: null, comment: '' }] : [],
    events,
    published: seed.unpublished ? events.length - 1 : events.length,
  });
}

/**
 * Stores the task, its output and its audit records as the server would
 * have: every event published but when `unpublished` says otherwise.
 */
async function seed(store: Store, s: Seed): Promise<TaskRecord> {
  const task = taskFrom(s);
  await store.insertTask({ ...task, published: 0 });
  let offset = 0;
  for (let seq = 1; seq <= (s.chunks ?? 0); seq++) {
    const data = Buffer.from(`line ${seq} of ${task.id}\n`);
    await store.putChunk({ taskId: task.id, seq, offset, data });
    offset += data.length;
  }
  await insertEvents(
    store,
    task.events.slice(0, task.published).map((_, i) => taskAuditEvent(task, i)),
  );
  await markPublished(store, [{ id: task.id, published: task.published }]);
  return task;
}

async function chunksOf(store: Store, id: string): Promise<number> {
  return (await store.chunkStats(id)).chunks;
}

/** A counter's value in a Metrics registry. */
async function counter(metrics: Metrics, name: string): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  return (await metric!.get()).values[0]?.value ?? NaN;
}

for (const kind of STORE_KINDS) {
  describe(`retention on ${kind.name}`, function () {
    let location: StoreLocation;
    let store: Store;

    before(async function () {
      const found = await kind.location();
      if (!found) return this.skip();
      location = found;
      store = await openStore(location.options);
    });

    after(async () => {
      await store?.close();
      location?.cleanup();
    });

    it('deletes terminal tasks that ended before the cutoff with their output, and keeps every other task and the audit trail', async () => {
      const old = await Promise.all([
        seed(store, { status: 'success', created: 41, finished: 40, chunks: 3 }),
        seed(store, { status: 'failure', created: 41, finished: 31, chunks: 2 }),
        seed(store, { status: 'killed', created: 60, finished: 59 }),
        seed(store, { status: 'rejected', created: 45, rejected: 40 }),
      ]);
      const kept = await Promise.all([
        seed(store, { status: 'success', created: 1, finished: 1, chunks: 2 }),
        // Created long ago, ended within the retention.
        seed(store, { status: 'success', created: 50, finished: 29, chunks: 1 }),
        seed(store, { status: 'rejected', created: 50, rejected: 2 }),
        seed(store, { status: 'running', created: 40, chunks: 2 }),
        seed(store, { status: 'ready', created: 40 }),
        seed(store, { status: 'pending-review', created: 40 }),
        seed(store, { status: 'created', created: 40 }),
        // Its last event not yet copied to the audit trail and the webhook queue.
        seed(store, { status: 'success', created: 41, finished: 40, chunks: 2, unpublished: true }),
      ]);
      const metrics = new Metrics({ store: () => store, connectedAgents: () => 0 });
      const retention = new Retention(store, silentLogger(), metrics, { retainMs: RETAIN_MS });

      expect(await retention.pass()).to.deep.equal({ tasks: 4, chunks: 5 });

      for (const task of old) {
        expect(await store.getTask(task.id), `${task.status} task ${task.id}`).to.equal(null);
        expect(await chunksOf(store, task.id)).to.equal(0);
        // The audit trail keeps every event of a deleted task.
        const events = await store.listEvents({ resource: `tasks/${task.id}`, limit: 10 });
        expect(events.map((e) => e.action)).to.deep.equal(task.events.map((e) => e.action));
      }
      for (const task of kept) {
        expect((await store.getTask(task.id))?.status, `${task.status} task created ${task.created.toISOString()}`).to.equal(task.status);
      }
      expect(await Promise.all(kept.map((t) => chunksOf(store, t.id)))).to.deep.equal([2, 1, 0, 2, 0, 0, 0, 2]);
      expect(await counter(metrics, 'taskgate_retention_deleted_tasks_total')).to.equal(4);
      expect(await counter(metrics, 'taskgate_retention_deleted_chunks_total')).to.equal(5);
      // Nothing is left for a second pass.
      expect(await retention.pass()).to.deep.equal({ tasks: 0, chunks: 0 });
      if (kind.name === 'sqlite') {
        // No row of a deleted task is left behind (its audience keys included).
        const db = new Database(join(location.options.dataDir!, 'taskgate.db'), { readonly: true });
        try {
          const ids = JSON.stringify(old.map((t) => t.id));
          const rows = db.prepare('SELECT (SELECT COUNT(*) FROM task_audience WHERE task_id IN (SELECT value FROM json_each(?))) + (SELECT COUNT(*) FROM chunks WHERE task_id IN (SELECT value FROM json_each(?))) AS n');
          expect((rows.get(ids, ids) as { n: number }).n).to.equal(0);
        } finally {
          db.close();
        }
      }
    });

    it('deletes in batches bounded in tasks and chunks; a task cut short keeps its rest for the next call, never chunks without a task', async () => {
      const tasks = await Promise.all(Array.from({ length: 5 }, () => seed(store, { status: 'success', created: 41, finished: 40, chunks: 4 })));
      const endedBefore = new Date(Date.now() - RETAIN_MS);
      const total = { tasks: 0, chunks: 0 };
      let calls = 0;
      for (let more = true; more; ) {
        const batch = await store.deleteEndedTasks(endedBefore, { tasks: 2, chunks: 3 });
        calls++;
        expect(batch.tasks).to.be.at.most(2);
        expect(batch.chunks).to.be.at.most(3);
        total.tasks += batch.tasks;
        total.chunks += batch.chunks;
        more = batch.more;
        for (const task of tasks) {
          if ((await store.getTask(task.id)) === null) expect(await chunksOf(store, task.id), `chunks of deleted task ${task.id}`).to.equal(0);
        }
        expect(calls).to.be.below(20);
      }
      expect(total).to.deep.equal({ tasks: 5, chunks: 20 });
      // 20 chunks, at most 3 a call.
      expect(calls).to.be.at.least(7);
    });

    it('passes running at once, each with its own store, delete every row once and all succeed', async function () {
      this.timeout(120_000);
      const doomed = await Promise.all(Array.from({ length: 40 }, (_, i) => seed(store, { status: i % 2 ? 'success' : 'failure', created: 41, finished: 40, chunks: 3 })));
      const kept = await Promise.all([
        seed(store, { status: 'success', created: 2, finished: 1, chunks: 2 }),
        seed(store, { status: 'running', created: 41, chunks: 2 }),
        seed(store, { status: 'success', created: 41, finished: 40, chunks: 2, unpublished: true }),
      ]);
      const passes = await raceRetention(location.options, { retainMs: RETAIN_MS, batchTasks: 7, batchChunks: 10 }, 3);
      const sum = passes.reduce((a, b) => ({ tasks: a.tasks + b.tasks, chunks: a.chunks + b.chunks }), { tasks: 0, chunks: 0 });
      expect(sum, JSON.stringify(passes)).to.deep.equal({ tasks: 40, chunks: 120 });
      for (const task of doomed) expect(await store.getTask(task.id)).to.equal(null);
      expect(await Promise.all(kept.map((t) => chunksOf(store, t.id)))).to.deep.equal([2, 2, 2]);
      expect(await store.deleteEndedTasks(new Date(Date.now() - RETAIN_MS), { tasks: 100, chunks: 100 })).to.deep.equal({ tasks: 0, chunks: 0, more: false });
    });

    it('stops a pass between two batches, and the next pass deletes the rest', async () => {
      const tasks = await Promise.all(Array.from({ length: 5 }, () => seed(store, { status: 'success', created: 41, finished: 40, chunks: 1 })));
      const metrics = new Metrics({ store: () => store, connectedAgents: () => 0 });
      const stopped = new Retention(store, silentLogger(), metrics, { retainMs: RETAIN_MS, batchTasks: 1 });
      const pass = stopped.pass();
      await stopped.stop();
      expect(await pass).to.deep.equal({ tasks: 1, chunks: 1 });
      const left = (await Promise.all(tasks.map((t) => store.getTask(t.id)))).filter((t) => t !== null);
      expect(left).to.have.length(4);
      for (const task of left) expect(await chunksOf(store, task!.id)).to.equal(1);
      expect(await new Retention(store, silentLogger(), metrics, { retainMs: RETAIN_MS }).pass()).to.deep.equal({ tasks: 4, chunks: 4 });
    });
  });
}

describe('--retain', function () {
  it('reads days, hours and minutes, and 0 or off for none', () => {
    expect(['30d', '36h', '2160m', ' 7D ', '0', 'off', 'OFF'].map(parseRetention)).to.deep.equal([30 * DAY, 36 * 3_600_000, 36 * 3_600_000, 7 * DAY, 0, 0, 0]);
    expect([30 * DAY, 36 * 3_600_000, 90 * 60_000, 0].map(formatRetention)).to.deep.equal(['30d', '36h', '90m', 'off']);
    for (const bad of ['30', '1.5d', '-1d', '30x', 'd', '', '1w']) expect(() => parseRetention(bad), bad).to.throw(/^--retain must be a whole number of days, hours or minutes/);
  });

  it('is off by default and refuses less than the day a request id holds its task', () => {
    expect(compileServerOptions({}).retainMs).to.equal(0);
    expect(compileServerOptions({ retainMs: DAY }).retainMs).to.equal(DAY);
    for (const retainMs of [12 * 3_600_000, -DAY, 0.5]) expect(() => compileServerOptions({ retainMs })).to.throw(/is too short: keep tasks at least 1d/);
  });

  it('refuses a bad value at start with one line and exit code 2', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'taskgate-retain-'));
    try {
      for (const [command, value, says] of [
        ['server', '30x', /^taskgate: --retain must be a whole number of days, hours or minutes \(30d, 12h, 90m\), or 0 or off to keep every task, not "30x"$/],
        ['dev', '1.5d', /^taskgate: --retain must be a whole number/],
        ['server', '12h', /^taskgate: a retention of 12h is too short: keep tasks at least 1d, as long as a retried CreateTask/],
      ] as const) {
        const cli = new CliProcess([command, '--retain', value, '--listen', '127.0.0.1:0', '--http-listen', '', '--data-dir', join(dir, command)]);
        const code = await cli.exited;
        expect(cli.output.split('\n'), `${command} --retain ${value}`).to.have.length(1);
        expect(cli.output).to.match(says);
        expect(code).to.equal(2);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('taskgate server --retain 30d', function () {
  let dir: string;
  let server: CliProcess | undefined;
  let api: Api | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-retain-'));
  });

  after(async () => {
    api?.close();
    await server?.terminate();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deletes the task that ended 40 days ago, keeps yesterday\'s, and the audit trail keeps the old one\'s events', async function () {
    this.timeout(60_000);
    const dataDir = join(dir, 'data');
    const store = await openStore({ dataDir });
    let old: TaskRecord;
    let recent: TaskRecord;
    try {
      old = await seed(store, { status: 'success', created: 41, finished: 40, chunks: 3 });
      recent = await seed(store, { status: 'success', created: 2, finished: 1, chunks: 2 });
    } finally {
      await store.close();
    }

    // As docs/operations.md writes it (its data dir here), so on the default port.
    server = new CliProcess(['server', '--retain', '30d', '--data-dir', dataDir]);
    await server.until(/"msg":"taskgate server listening"/);
    const listening = JSON.parse(server.output.split('\n').find((l) => l.includes('"msg":"taskgate server listening"'))!) as { listen: string; retain: string };
    expect(listening.retain).to.equal('30d');
    await server.until(/"msg":"retention: deleted tasks that ended before the cutoff/);
    const pass = JSON.parse(server.output.split('\n').find((l) => l.includes('"msg":"retention: deleted tasks'))!) as { tasks: number; chunks: number };
    expect(pass, 'what the first pass deleted').to.deep.include({ tasks: 1, chunks: 3 });
    await server.until(/^First start: /);
    api = new Api({ server: listening.listen, token: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim() });

    const gone = await api.call(api.tasks, api.tasks.getTask, { id: old.id }).then(
      () => null,
      (err: unknown) => (isServiceError(err) ? err.code : err),
    );
    expect(gone).to.equal(status.NOT_FOUND);
    expect((await api.call(api.tasks, api.tasks.getTask, { id: recent.id })).task?.finished?.toISOString()).to.equal(recent.finished!.toISOString());
    const { events } = await api.call(api.events, api.events.listEvents, ListEventsRequest.fromPartial({ resource: `tasks/${old.id}` }));
    expect(events.map((e) => e.action)).to.deep.equal(['task.created', 'task.ready', 'task.running', 'task.success']);
    // A clean stop, its retention job included.
    expect(await server.terminate()).to.equal(0);
    server = undefined;
  });
});
