/**
 * Hostile review of tasks claimed at creation (AgentSession.claimNew): races
 * of CreateTask's insert with request-id repeats, lost insert replies and a
 * stream replaced while the insert is in flight, and the oldest-first order
 * across replicas. The store is wrapped to hold one insert open (a slow
 * MongoDB round trip), so each race is hit every run.
 */
import { expect } from 'chai';
import { TaskStatus, type CreateTaskRequest, type Task } from '../../gen/taskgate/v1/task.js';
import { TaskgateAgent } from '../../agent/agent.js';
import type { Api } from '../../cli/client.js';
import { TaskgateServer, type ServerOptions } from '../../server/server.js';
import type { ClaimedTasks, Store, TaskRecord } from '../../server/store/store.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

type InsertHook = (task: TaskRecord, insert: () => Promise<void>) => Promise<void>;
type ClaimHook = (claim: () => Promise<unknown>) => Promise<unknown>;

/**
 * `store` with insertTask going through `hook` and claimReady or claimNextReady
 * through `claimHook` (each decides when, and whether, the real call runs).
 */
function hooked(store: Store, hook: { current: InsertHook | null }, claimHook: { current: ClaimHook | null } = { current: null }): Store {
  return new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (key === 'insertTask') {
        return (task: TaskRecord) => {
          const real = () => target.insertTask(task);
          return hook.current ? hook.current(task, real) : real();
        };
      }
      // The claim of ready tasks, in its batch form or one at a time (MongoDB).
      if (key === 'claimReady' && target.claimReady) {
        return (agent: string, bootId: string, time: Date, limit: number) => {
          const real = () => target.claimReady!(agent, bootId, time, limit);
          return claimHook.current ? (claimHook.current(real) as Promise<ClaimedTasks>) : real();
        };
      }
      if (key === 'claimNextReady') {
        return (agent: string, bootId: string, time: Date) => {
          const real = () => target.claimNextReady(agent, bootId, time);
          return claimHook.current ? (claimHook.current(real) as Promise<TaskRecord | null>) : real();
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Resolves with the task once it is no longer running (or whatever it is after `ms`). */
async function settled(h: Harness, id: string, ms: number): Promise<Task> {
  const until = Date.now() + ms;
  for (;;) {
    const task = await h.getTask(id);
    const open = [TaskStatus.TASK_STATUS_RUNNING, TaskStatus.TASK_STATUS_READY].includes(task.status);
    if (!open || Date.now() > until) return task;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Cuts the agent's connection for 200 ms and resolves once it is connected again (a resume on a new stream). */
async function resumeAfterCut(agent: TaskgateAgent, proxy: TcpProxy): Promise<void> {
  const back = new Promise<void>((resolve) => {
    const onState = (s: string) => {
      if (s === 'connected') {
        agent.off('state', onState);
        resolve();
      }
    };
    agent.on('state', onState);
  });
  proxy.cut();
  await new Promise((r) => setTimeout(r, 200));
  proxy.restore();
  await back;
}

function statusName(s: TaskStatus): string {
  return TaskStatus[s] ?? String(s);
}

describe('claims review: claims that race inserts, lost replies and resumes (mongodb)', function () {
  this.timeout(60_000);
  let h: Harness;
  let location: StoreLocation;
  const hook: { current: InsertHook | null } = { current: null };
  const claimHook: { current: ClaimHook | null } = { current: null };
  const closers: Array<() => Promise<unknown>> = [];

  /** A harness whose server runs over the hooked store. */
  async function start(options: ServerOptions = {}): Promise<void> {
    h = await Harness.start(location, options);
    await h.server.stop();
    h.server = await TaskgateServer.start({
      ...location.options,
      callsPerSecond: 0,
      streamsPerUser: 0,
      authFailuresPerSecond: 0,
      ...options,
      listen: h.address,
      store: hooked(h.store, hook, claimHook),
    });
  }

  beforeEach(async function () {
    const loc = await STORE_KINDS.find((k) => k.name === 'mongodb')!.location();
    if (!loc) this.skip();
    location = loc;
    hook.current = null;
    claimHook.current = null;
  });

  afterEach(async () => {
    hook.current = null;
    claimHook.current = null;
    for (const close of closers.splice(0).reverse()) await close();
    await h?.close();
  });

  function create(api: Api, fields: Partial<CreateTaskRequest>): Promise<Task> {
    const request = { target: 't', script: 'echo hi', message: '', type: '', timeoutSeconds: 0, requestId: '', ...fields };
    return api.call(api.tasks, api.tasks.createTask, request).then((r) => r.task!);
  }

  /** An idle, heard agent: a task run to its end first (its session then claims new tasks as they are inserted). */
  async function warm(): Promise<void> {
    const t = await create(h.api, { script: 'echo warm' });
    expect((await h.finished(t.id)).task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
  }

  it('a request-id repeat that inserts the bound task while the first insert is slow: the task runs to its end (the loser\'s claim must not forget the winner\'s)', async () => {
    await start();
    await h.startAgent('a1');
    await h.createTarget('t', 'a1');
    await warm();
    let entered!: () => void;
    const firstEntered = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let calls = 0;
    hook.current = async (_task, insert) => {
      calls += 1;
      if (calls === 1) {
        // The first call's insert: its binding is stored, the task not yet (a slow round trip).
        entered();
        await released;
      }
      await insert();
    };
    const first = create(h.api, { script: 'echo ran-once', requestId: 'req-review-race1' });
    await firstEntered;
    // The repeat finds the binding, no task under it, and inserts it itself (claimed at creation).
    const repeat = await create(h.api, { script: 'echo ran-once', requestId: 'req-review-race1' });
    release();
    const answer = await first;
    expect(answer.id).to.equal(repeat.id);
    const done = await settled(h, repeat.id, 8000);
    const stored = await h.store.getTask(repeat.id);
    expect(
      [statusName(done.status), stored?.status],
      `task ${repeat.id} is still ${stored?.status} (agent ${stored?.agent}, boot ${stored?.bootId}) 8 s later`,
    ).to.deep.equal(['TASK_STATUS_SUCCESS', 'success']);
  });

  it('an insert whose reply is lost (stored, then the call fails): the task is not left running for a live agent that never got it', async () => {
    await start();
    await h.startAgent('a1');
    await h.createTarget('t', 'a1');
    await warm();
    hook.current = async (task, insert) => {
      await insert();
      if (task.requestId === 'req-review-lost1') {
        hook.current = null;
        throw new Error('connection reset (the insert was stored; its reply was lost)');
      }
    };
    let failed: unknown = null;
    try {
      await create(h.api, { script: 'echo after-lost-reply', requestId: 'req-review-lost1' });
    } catch (err) {
      failed = err;
    }
    expect(failed, 'the first call fails').to.not.equal(null);
    // The client retries with the same request id, as the CLI does.
    const retried = await create(h.api, { script: 'echo after-lost-reply', requestId: 'req-review-lost1' });
    const done = await settled(h, retried.id, 8000);
    const stored = await h.store.getTask(retried.id);
    expect(
      [statusName(done.status), stored?.status],
      `task ${retried.id} answered as ${statusName(retried.status)}; 8 s later it is ${stored?.status} for agent ${stored?.agent} (boot ${stored?.bootId}), which is connected and idle`,
    ).to.deep.equal(['TASK_STATUS_SUCCESS', 'success']);
  });

  it('the stream is replaced (agent resumes) while a claimed-at-creation insert is in flight: the task still runs', async () => {
    await start({ leaseMs: 30_000 });
    const proxy = await TcpProxy.start(h.address);
    closers.push(() => proxy.close());
    const agent = await h.startAgent('a1', { server: proxy.address });
    await h.createTarget('t', 'a1');
    await warm();
    let entered!: () => void;
    const claimedInsert = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    hook.current = async (task, insert) => {
      if (task.script === 'echo survived-resume') {
        hook.current = null;
        entered();
        await released;
      }
      await insert();
    };
    const creating = create(h.api, { script: 'echo survived-resume' });
    await claimedInsert;
    // The agent's connection drops and it resumes on a new stream before the insert lands.
    await resumeAfterCut(agent, proxy);
    await new Promise((r) => setTimeout(r, 300));
    release();
    const task = await creating; // answered running: claimed at creation for the replaced stream
    const done = await settled(h, task.id, 8000);
    const stored = await h.store.getTask(task.id);
    // The agent is connected and idle: another task runs at once.
    const next = await create(h.api, { script: 'echo next' });
    expect((await h.finished(next.id)).task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    expect(
      [statusName(done.status), stored?.status],
      `task ${task.id} is still ${stored?.status} for agent ${stored?.agent} (boot ${stored?.bootId}) 8 s later, while the agent runs other tasks`,
    ).to.deep.equal(['TASK_STATUS_SUCCESS', 'success']);
  });

  it('a pump\'s claim that lands after the stream was replaced (agent resumes) and its Hello reconciled: the task still runs', async () => {
    await start({ leaseMs: 30_000 });
    const proxy = await TcpProxy.start(h.address);
    closers.push(() => proxy.close());
    const agent = await h.startAgent('a1', { server: proxy.address });
    await h.createTarget('t', 'a1');
    await warm();
    // Every claim waits its turn: the old session's (first), then the new session's.
    const held: Array<{ release: () => void; done: Promise<unknown> }> = [];
    let firstHeld!: () => void;
    const oldClaimHeld = new Promise<void>((r) => (firstHeld = r));
    claimHook.current = (claim) => {
      let release!: () => void;
      const turn = new Promise<void>((r) => (release = r));
      const done = turn.then(claim);
      held.push({ release, done });
      if (held.length === 1) firstHeld();
      return done;
    };
    const task = await create(h.api, { script: 'echo claimed-late' });
    await oldClaimHeld;
    await resumeAfterCut(agent, proxy); // the new session's Hello found nothing of this task running
    await new Promise((r) => setTimeout(r, 300));
    // The old session's claim now takes the task for the boot, and returns to a closed session.
    held[0]!.release();
    await held[0]!.done;
    claimHook.current = null;
    for (const rest of held.slice(1)) rest.release();
    const done = await settled(h, task.id, 8000);
    const stored = await h.store.getTask(task.id);
    expect(
      [statusName(done.status), stored?.status],
      `task ${task.id} is still ${stored?.status} for agent ${stored?.agent} (boot ${stored?.bootId}) 8 s later`,
    ).to.deep.equal(['TASK_STATUS_SUCCESS', 'success']);
    expect(stored!.events.map((e) => e.reason)).to.include('claimed for an agent stream that had closed; requeued');
  });

  it('a pump\'s claim whose reply is slow across two lease checks (stored, not yet held by the live session): the lease check leaves it, and the task runs once', async () => {
    // Lease checks every 500 ms; no polls during the test; one task at a time.
    await start({ leaseMs: 2000, pollMs: 600_000, maxTasksPerAgent: 1 });
    const agent = await h.startAgent('a1');
    await h.createTarget('t', 'a1');
    await warm();
    const starts = new Map<string, number>();
    agent.on('task-start', (id: string) => starts.set(id, (starts.get(id) ?? 0) + 1));
    // The claim's write is done at once; its reply (the target's read after it, on MongoDB) takes 1.5 s.
    claimHook.current = async (claim) => {
      claimHook.current = null;
      const result = await claim();
      await new Promise((r) => setTimeout(r, 1500));
      return result;
    };
    const task = await create(h.api, { script: 'sleep 0.3' });
    const done = await settled(h, task.id, 8000);
    const stored = await h.store.getTask(task.id);
    expect(
      { status: statusName(done.status), starts: starts.get(task.id) ?? 0, events: stored!.events.map((e) => `${e.to}: ${e.reason}`) },
    ).to.deep.equal({ status: 'TASK_STATUS_SUCCESS', starts: 1, events: stored!.events.slice(0, 3).map((e) => `${e.to}: ${e.reason}`).concat(`success: exited with status 0`) });
  });
});

describe('claims review: oldest first across replicas (mongodb)', function () {
  this.timeout(60_000);
  let h: Harness;
  let b: TaskgateServer | undefined;
  let agent: TaskgateAgent | undefined;

  before(async function () {
    const location = await STORE_KINDS.find((k) => k.name === 'mongodb')!.location();
    if (!location) this.skip();
    h = await Harness.start(location, { pollMs: 2000 });
    b = await TaskgateServer.start({ ...location.options, listen: '127.0.0.1:0', pollMs: 2000, maxTasksPerAgent: 1, callsPerSecond: 0 });
    await h.createTarget('t1', 'a1');
    agent = new TaskgateAgent({ server: `127.0.0.1:${b.port}`, token: await h.agentToken('a1'), name: 'a1' });
    await new Promise<void>((resolve) => {
      agent!.on('state', (s) => s === 'connected' && resolve());
      agent!.start();
    });
  });

  after(async () => {
    await agent?.stop();
    await b?.stop();
    await h?.close();
  });

  it('a task created through replica B does not overtake an older ready task of the same agent created through replica A', async () => {
    const { Api } = await import('../../cli/client.js');
    const onB = new Api({ server: `127.0.0.1:${b!.port}`, token: h.adminToken });
    try {
      const viaB = (script: string) =>
        onB.call(onB.tasks, onB.tasks.createTask, { target: 't1', script, message: '', type: '', timeoutSeconds: 0, requestId: '' }).then((r) => r.task!);
      // Warm: the session on B has heard its agent and found nothing left ready.
      expect((await h.finished((await viaB('echo warm')).id)).task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const older = await h.createTask('t1', 'echo older');
      const newer = await viaB('echo newer');
      await h.finished(older.id);
      await h.finished(newer.id);
      const claimedAt = async (id: string) => (await h.store.getTask(id))!.events.find((e) => e.to === 'running')!.time.getTime();
      const [o, n] = [await claimedAt(older.id), await claimedAt(newer.id)];
      expect(o, `older ${older.id} claimed ${o - n} ms after newer ${newer.id} (max 1 task per agent)`).to.be.at.most(n);
    } finally {
      onB.close();
    }
  });
});
