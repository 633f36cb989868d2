/**
 * WatchTasks, the followed list the console's pages hold (proto
 * TaskService.WatchTasks): the first page, `synced`, then each change of a
 * task the caller may see that passes the filters, and `removed` when one
 * stops passing them; changes made behind this server's back (another
 * replica) arrive by its poll. And GetTaskLogs' range reads (limit_bytes),
 * which the console's "load earlier" uses.
 */
import { status, type ClientReadableStream } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ReviewDecision, TaskStatus, WatchTasksRequest, type GetTaskLogsResponse, type WatchTasksResponse } from '../../gen/taskgate/v1/task.js';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import type { Api } from '../../cli/client.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

/** One followed list: everything it was sent, and a way to wait for what comes next. */
class Watch {
  readonly events: WatchTasksResponse['event'][] = [];
  readonly #call: ClientReadableStream<WatchTasksResponse>;
  #waiters: Array<() => void> = [];
  error: (Error & { code?: number }) | undefined;

  constructor(api: Api, request: Partial<WatchTasksRequest>) {
    this.#call = api.tasks.watchTasks(WatchTasksRequest.fromPartial(request), api.metadata);
    this.#call.on('data', (m: WatchTasksResponse) => {
      this.events.push(m.event);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.#call.on('error', (err: Error) => {
      this.error = err;
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** What the list holds now: task id → status, built as a client builds it. */
  list(): Map<string, TaskStatus> {
    const list = new Map<string, TaskStatus>();
    for (const e of this.events) {
      if (e?.$case === 'task') list.set(e.value.id, e.value.status);
      if (e?.$case === 'removed') list.delete(e.value);
    }
    return list;
  }

  /** Resolves once `check` holds of what was sent; fails after `ms`. */
  async until(what: string, check: () => boolean, ms = 8000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (this.error && this.error.code !== status.CANCELLED) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`never happened: ${what}; got ${JSON.stringify(this.events.map((e) => (e?.$case === 'task' ? [e.value.id, e.value.status] : e)))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  synced(): boolean {
    return this.events.some((e) => e?.$case === 'synced');
  }

  close(): void {
    this.#call.cancel();
  }
}

describe('WatchTasks and log ranges', function () {
  let h: Harness;
  let dev: Awaited<ReturnType<Harness['user']>>;
  let dba: Awaited<ReturnType<Harness['user']>>;
  let ops: Awaited<ReturnType<Harness['user']>>;
  const watches: Watch[] = [];
  const watch = (api: Api, request: Partial<WatchTasksRequest> = {}): Watch => {
    const w = new Watch(api, request);
    watches.push(w);
    return w;
  };

  before(async () => {
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!);
    await h.startAgent('a1');
    await h.createTarget('devbox', 'a1', 'bash', { groups: ['dev'] });
    await h.createTarget('reviewed', 'a1', 'bash', { groups: ['dev'], review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba'] });
    await h.createTarget('opsbox', 'a1', 'bash', { groups: ['ops'] });
    dev = await h.user('dev@x', ['dev']);
    dba = await h.user('dba@x', ['dba']);
    ops = await h.user('ops@x', ['ops']);
  });

  afterEach(() => {
    for (const w of watches.splice(0)) w.close();
  });

  after(async () => {
    await h?.close();
  });

  async function create(api: Api, target: string, script = 'true'): Promise<string> {
    return (await api.call(api.tasks, api.tasks.createTask, { target, script, message: 'm', type: '', timeoutSeconds: 0, requestId: '' })).task!.id;
  }

  it('sends the first page newest first, then synced, then each task as it is created and changes', async () => {
    const older = await create(dev, 'devbox');
    const newer = await create(dev, 'devbox');
    await h.finished(newer);
    const w = watch(dev, { target: 'devbox', pageSize: 2 });
    await w.until('synced', () => w.synced());
    expect(w.events.slice(0, 3).map((e) => (e?.$case === 'task' ? e.value.id : e?.$case))).to.deep.equal([newer, older, 'synced']);
    const fresh = await create(dev, 'devbox', 'echo hi');
    await w.until('the new task, succeeded', () => w.list().get(fresh) === TaskStatus.TASK_STATUS_SUCCESS);
    // It went through running on the way (each state is sent once, output is not a change).
    const states = w.events.flatMap((e) => (e?.$case === 'task' && e.value.id === fresh ? [e.value.status] : []));
    expect(new Set(states).size).to.equal(states.length);
    expect(states.at(-1)).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
  });

  it('removes a task that stops passing the filters: the inbox loses a task once it is reviewed', async () => {
    const inbox = watch(dba, { awaitingMyReview: true });
    await inbox.until('synced', () => inbox.synced());
    const id = await create(dev, 'reviewed');
    await inbox.until('the task in the inbox', () => inbox.list().has(id));
    await dba.call(dba.tasks, dba.tasks.reviewTask, { id, decision: ReviewDecision.REVIEW_DECISION_APPROVE, group: 'dba', comment: 'ok', requestId: '' });
    await inbox.until('the task removed', () => !inbox.list().has(id));
    expect(inbox.events.at(-1)).to.deep.equal({ $case: 'removed', value: id });
    // The creator's own list ("mine") has it approved.
    const mine = watch(dev, { createdByMe: true, statuses: [TaskStatus.TASK_STATUS_APPROVED] });
    await mine.until('synced', () => mine.synced());
    expect(mine.list().get(id)).to.equal(TaskStatus.TASK_STATUS_APPROVED);
  });

  it('never sends a task the caller may not see', async () => {
    const devList = watch(dev);
    const opsList = watch(ops);
    await devList.until('synced', () => devList.synced());
    await opsList.until('synced', () => opsList.synced());
    const hidden = await create(ops, 'opsbox', 'echo secret-ops');
    const shown = await create(dev, 'devbox');
    await h.finished(hidden);
    await devList.until('the dev task done', () => devList.list().get(shown) === TaskStatus.TASK_STATUS_SUCCESS);
    await opsList.until('the ops task done', () => opsList.list().get(hidden) === TaskStatus.TASK_STATUS_SUCCESS);
    const seen = (w: Watch): string[] => w.events.flatMap((e) => (e?.$case === 'task' ? [e.value.id] : []));
    expect(seen(devList)).not.to.include(hidden);
    expect(seen(opsList)).not.to.include(shown);
  });

  it('sees changes made behind its server (another replica) by its poll', async function () {
    this.timeout(20_000);
    const id = await create(dev, 'reviewed');
    const w = watch(dev, { statuses: [TaskStatus.TASK_STATUS_PENDING_REVIEW] });
    await w.until('the pending task', () => w.list().has(id));
    // Written straight into the store, as a replica sharing it would: this server's hub hears nothing.
    await h.store.updateTask(id, (t) => ({ ...t, status: 'rejected', finished: new Date(), events: [...t.events, { time: new Date(), actor: 'user:dba@x', action: 'task.rejected', from: 'pending-review', to: 'rejected', reason: 'elsewhere' }] }));
    await w.until('removed after the poll', () => !w.list().has(id), 12_000);
  });

  it('refuses bad filters in one line', async () => {
    const w = watch(dev, { statuses: [99 as TaskStatus] });
    await w.until('an error', () => w.error !== undefined).catch(() => undefined);
    expect([w.error?.code, w.error?.message]).to.deep.equal([status.INVALID_ARGUMENT, '3 INVALID_ARGUMENT: unknown status value 99']);
  });

  it('refuses a NUL character in any string field, naming the field', async () => {
    const refused = await dev.call(dev.tasks, dev.tasks.createTask, { target: 'devbox', script: 'echo a', message: 'm\u0000', type: '', timeoutSeconds: 0, requestId: '' }).then(
      () => undefined,
      (e: Error & { code?: number }) => [e.code, e.message],
    );
    expect(refused).to.deep.equal([status.INVALID_ARGUMENT, '3 INVALID_ARGUMENT: message must not contain NUL characters (U+0000)']);
    const w = watch(dev, { target: 'x\u0000' });
    await w.until('an error', () => w.error !== undefined).catch(() => undefined);
    expect(w.error?.message).to.equal('3 INVALID_ARGUMENT: target must not contain NUL characters (U+0000)');
  });

  it('reads a range of output with limit_bytes, ending without finished', async () => {
    const task = await h.createTask('devbox', 'for i in $(seq 1 3000); do echo "line $i"; done');
    const { output } = await h.finished(task.id);
    for (const [offset, limit] of [
      [0, 10],
      [1000, 5000],
      [output.length - 7, 100],
    ] as const) {
      const parts: Buffer[] = [];
      let finished = false;
      const call = h.api.tasks.getTaskLogs({ id: task.id, offset, follow: true, limitBytes: limit, tailBytes: 0 }, h.api.metadata);
      for await (const m of call as AsyncIterable<GetTaskLogsResponse>) {
        if (m.event?.$case === 'chunk') parts.push(Buffer.from(m.event.value.data));
        if (m.event?.$case === 'finished') finished = true;
      }
      const want = output.subarray(offset, offset + limit);
      expect(Buffer.concat(parts).equals(want), `${offset}+${limit}`).to.equal(true);
      // Cut short by the limit: no `finished`; reaching the end first: `finished`, as without a limit.
      expect(finished, `${offset}+${limit}`).to.equal(offset + limit > output.length);
    }
    // tail_bytes: the last bytes stored, whatever output_bytes says (0 while a task runs).
    for (const tail of [1, 100, output.length + 5]) {
      const parts: Buffer[] = [];
      const call = h.api.tasks.getTaskLogs({ id: task.id, offset: 0, follow: false, limitBytes: 0, tailBytes: tail }, h.api.metadata);
      for await (const m of call as AsyncIterable<GetTaskLogsResponse>) if (m.event?.$case === 'chunk') parts.push(Buffer.from(m.event.value.data));
      expect(Buffer.concat(parts).equals(output.subarray(Math.max(0, output.length - tail))), `tail ${tail}`).to.equal(true);
    }
    const negative = h.api.tasks.getTaskLogs({ id: task.id, offset: 0, follow: false, limitBytes: -1, tailBytes: 0 }, h.api.metadata);
    const err = await new Promise<Error & { code?: number }>((resolve) => negative.on('error', resolve).on('data', () => undefined));
    expect([err.code, err.message]).to.deep.equal([status.INVALID_ARGUMENT, '3 INVALID_ARGUMENT: limit_bytes must not be negative (0: no limit)']);
  });
});
