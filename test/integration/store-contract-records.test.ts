/**
 * The Store contract (see store-contract.test.ts) for the records other
 * than tasks and their claims: output chunks and counters, targets, agents
 * and tokens, users, audit events, webhook deliveries and request ids, run
 * unchanged against the embedded SQLite store and MongoDB (FerretDB v1 here).
 */
import { expect } from 'chai';
import { AlreadyExistsError } from '../../shared/errors.js';
import { newTaskId } from '../../shared/ids.js';
import { applyOnce, requestOf } from '../../server/request-ids.js';
import {
  applyTransition,
  insertRequestAndTask,
  type AgentRecord,
  type RequestRecord,
  type Store,
  type TargetRecord,
  type TaskRecord,
} from '../../server/store/store.js';
import { targetRecord } from '../helpers/records.js';
import { describeStoreContract, move, openStoreEach, task } from '../helpers/store-contract.js';
import { raceStores } from '../helpers/store-worker.js';
import type { StoreLocation } from '../helpers/stores.js';

function target(name: string, overrides: Partial<TargetRecord> = {}): TargetRecord {
  return targetRecord(name, { agent: 'x', ...overrides });
}

function agent(overrides: Partial<AgentRecord> = {}): AgentRecord {
  return { name: 'a1', version: '1', bootId: 'b', lastSeen: null, connected: false, tokenId: '', secretHashes: [], ...overrides };
}

describeStoreContract('output', (kind) => {
  let store: Store;
  openStoreEach(kind, (opened) => (store = opened.store), () => store);

  it('stores output chunks idempotently and reads them by seq and by offset', async () => {
    const id = newTaskId();
    const parts = ['hello ', 'wor', 'ld\n'];
    let offset = 0;
    for (const [seq, text] of parts.entries()) {
      await store.putChunk({ taskId: id, seq, offset, data: Buffer.from(text) });
      offset += text.length;
    }
    await store.putChunk({ taskId: id, seq: 1, offset: 6, data: Buffer.from('XXX') });
    expect(await store.chunkStats(id)).to.deep.equal({ chunks: 3, bytes: 12 });
    const all = await store.readChunks(id, { afterSeq: -1 }, 10);
    expect(Buffer.concat(all.map((c) => c.data)).toString()).to.equal('hello world\n');
    expect((await store.readChunks(id, { afterSeq: 0 }, 1)).map((c) => c.seq)).to.deep.equal([1]);
    expect((await store.readChunks(id, { fromOffset: 7 }, 10)).map((c) => c.seq)).to.deep.equal([1, 2]);
    expect((await store.readChunks(id, { fromOffset: 12 }, 10))).to.deep.equal([]);
    expect(await store.chunkStats('none')).to.deep.equal({ chunks: 0, bytes: 0 });
  });

  it('stores a chunk only while its task is running', async () => {
    const running = task({ status: 'running' });
    const done = task({ status: 'success' });
    await store.insertTask(running);
    await store.insertTask(done);
    expect(await store.putChunkIfRunning({ taskId: running.id, seq: 0, offset: 0, data: Buffer.from('yes') })).to.equal(true);
    // A resend of a stored chunk is accepted and changes nothing.
    expect(await store.putChunkIfRunning({ taskId: running.id, seq: 0, offset: 0, data: Buffer.from('XXX') })).to.equal(true);
    expect(await store.putChunkIfRunning({ taskId: done.id, seq: 0, offset: 0, data: Buffer.from('no') })).to.equal(false);
    expect(await store.putChunkIfRunning({ taskId: 'missing', seq: 0, offset: 0, data: Buffer.from('no') })).to.equal(false);
    await store.transition(move(running.id, ['running'], 'failure'));
    expect(await store.putChunkIfRunning({ taskId: running.id, seq: 1, offset: 3, data: Buffer.from('late') })).to.equal(false);
    expect(await store.chunkStats(running.id)).to.deep.equal({ chunks: 1, bytes: 3 });
    expect(await store.chunkStats(done.id)).to.deep.equal({ chunks: 0, bytes: 0 });
  });

  it('keeps binary output byte for byte', async () => {
    const id = newTaskId();
    const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await store.putChunk({ taskId: id, seq: 0, offset: 0, data });
    expect((await store.readChunks(id, { afterSeq: -1 }, 1))[0]?.data.equals(data)).to.equal(true);
  });

  it("sets a task's output counter to its stored bytes whenever it ends, whatever the writer says", async () => {
    const t = task({ status: 'running' });
    await store.insertTask(t);
    await store.putChunkIfRunning({ taskId: t.id, seq: 0, offset: 0, data: Buffer.from('hello ') });
    await store.putChunkIfRunning({ taskId: t.id, seq: 1, offset: 6, data: Buffer.from('world\n') });
    // A move that stays live leaves the counter alone.
    expect((await store.patchTask(t.id, 'running', { outputBytes: 3 }))?.outputBytes).to.equal(3);
    // "agent restarted", "agent lost": the writer knows nothing of the output.
    const ended = await store.transition(move(t.id, ['running'], 'failure', { outputBytes: 0, failureReason: 'agent restarted' }));
    expect(ended?.outputBytes).to.equal(12);
    expect((await store.getTask(t.id))?.outputBytes).to.equal(12);
    // A write through updateTask that ends a task is counted too.
    const other = task({ status: 'running' });
    await store.insertTask(other);
    await store.putChunk({ taskId: other.id, seq: 0, offset: 0, data: Buffer.from('abc') });
    expect((await store.updateTask(other.id, (x) => ({ ...x, status: 'killed' })))?.outputBytes).to.equal(3);
    // Nothing stored: 0, whatever was claimed.
    const empty = task({ status: 'ready' });
    await store.insertTask(empty);
    expect((await store.transition(move(empty.id, ['ready'], 'killed', { outputBytes: 99 })))?.outputBytes).to.equal(0);
  });
});

describeStoreContract('targets, agents and users', (kind) => {
  let store: Store;
  openStoreEach(kind, (opened) => (store = opened.store), () => store);

  it('manages targets: unique names, paging by name, update, delete', async () => {
    const now = new Date();
    for (const name of ['b', 'a', 'c']) await store.insertTarget(target(name, { created: now, updated: now }));
    let error: unknown;
    try {
      await store.insertTarget(target('a', { type: 'sh', agent: 'y' }));
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(AlreadyExistsError);
    expect((await store.listTargets('', 2)).map((t) => t.name)).to.deep.equal(['a', 'b']);
    expect((await store.listTargets('b', 2)).map((t) => t.name)).to.deep.equal(['c']);
    const later = new Date(now.getTime() + 1000);
    const updated = await store.updateTarget('a', { agent: 'z', review: 'team', reviewers: ['DBA', 'SRE'], runAs: 'postgres' }, later);
    expect([updated?.agent, updated?.type, updated?.updated.getTime()]).to.deep.equal(['z', 'bash', later.getTime()]);
    expect(await store.getTarget('a')).to.deep.include({ review: 'team', reviewers: ['DBA', 'SRE'], groups: [], active: true, runAs: 'postgres' });
    // A target written before run_as existed reads as "" (a uid of its own).
    const old: Partial<TargetRecord> = target('old');
    delete old.runAs;
    await store.insertTarget(old as Omit<TargetRecord, 'runAs'>);
    expect((await store.getTarget('old'))?.runAs).to.equal('');
    expect(await store.updateTarget('nope', { agent: 'z' }, later)).to.equal(null);
    expect(await store.deleteTarget('a')).to.equal(true);
    expect(await store.deleteTarget('a')).to.equal(false);
    expect(await store.getTarget('a')).to.equal(null);
  });

  it('remembers agents and finds tokens by hash', async () => {
    await store.putAgent(agent());
    const session = agent({ version: '2', bootId: 'c', lastSeen: new Date(5), connected: true, tokenId: 't1', secretHashes: ['h2', 'h1'] });
    await store.putAgent(session);
    expect(await store.listAgents()).to.deep.equal([session]);
    // Presence updates leave the session as it is.
    expect(await store.updateAgentPresence('a1', { lastSeen: new Date(6), connected: false })).to.equal(true);
    expect(await store.getAgent('a1')).to.deep.equal({ ...session, lastSeen: new Date(6), connected: false });
    expect(await store.updateAgentPresence('nope', { lastSeen: new Date(6), connected: true })).to.equal(false);
    expect(await store.getAgent('nope')).to.equal(null);
    // (An agent stored before session secrets existed: store-documents.test.ts, records of other releases.)
    const token = { id: 'id1', hash: 'h1', kind: 'agent' as const, subject: 'a1', name: '', created: new Date(7), createdBy: 'system', revoked: null };
    await store.insertToken(token);
    await store.insertToken({ ...token, id: 'id2', hash: 'h2', kind: 'user', subject: 'u@x', created: new Date(8) });
    expect(await store.findTokenByHash('h1')).to.deep.equal(token);
    expect(await store.findTokenByHash('h3')).to.equal(null);
    expect((await store.listTokens(undefined)).map((t) => t.id)).to.deep.equal(['id1', 'id2']);
    expect((await store.listTokens('u@x')).map((t) => t.id)).to.deep.equal(['id2']);
    expect((await store.revokeToken('id2', new Date(9)))?.revoked).to.deep.equal(new Date(9));
    // A second revocation keeps the first time.
    expect((await store.revokeToken('id2', new Date(10)))?.revoked).to.deep.equal(new Date(9));
    expect((await store.findTokenByHash('h2'))?.revoked).to.deep.equal(new Date(9));
    expect(await store.revokeToken('nope', new Date(9))).to.equal(null);
  });

  it('manages users: unique emails, paging, update', async () => {
    const now = new Date(1000);
    for (const email of ['b@x', 'a@x', 'c@x']) {
      await store.insertUser({ email, name: email, groups: ['dev'], active: true, created: now, updated: now });
    }
    let error: unknown;
    try {
      await store.insertUser({ email: 'a@x', name: '', groups: [], active: true, created: now, updated: now });
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(AlreadyExistsError);
    expect(await store.countUsers()).to.equal(3);
    expect((await store.listUsers('', 2)).map((u) => u.email)).to.deep.equal(['a@x', 'b@x']);
    expect((await store.listUsers('b@x', 5)).map((u) => u.email)).to.deep.equal(['c@x']);
    const updated = await store.updateUser('a@x', { groups: ['dev', 'dba'], active: false }, new Date(2000));
    expect(updated).to.deep.equal({ email: 'a@x', name: 'a@x', groups: ['dev', 'dba'], active: false, created: now, updated: new Date(2000) });
    expect(await store.getUser('a@x')).to.deep.equal(updated);
    expect(await store.updateUser('nope@x', { name: 'n' }, now)).to.equal(null);
  });
});

describeStoreContract('audit events and webhook deliveries', (kind) => {
  let store: Store;
  openStoreEach(kind, (opened) => (store = opened.store), () => store);

  it('keeps audit events once each, listed oldest first by actor, resource and time', async () => {
    const event = (id: string, time: number, actor: string, resource: string) => ({
      id,
      time: new Date(time),
      actor,
      action: 'task.ready',
      resource,
      from: 'created',
      to: 'ready',
      detail: '',
    });
    await store.insertEvent(event('03', 3000, 'user:a', 'tasks/1'));
    await store.insertEvent(event('01', 1000, 'user:b', 'tasks/1'));
    await store.insertEvent(event('02', 2000, 'user:a', 'tasks/2'));
    await store.insertEvent(event('02', 2000, 'user:a', 'tasks/2'));
    const ids = async (query: Parameters<Store['listEvents']>[0]) => (await store.listEvents(query)).map((e) => e.id);
    expect(await ids({ limit: 10 })).to.deep.equal(['01', '02', '03']);
    expect(await ids({ actor: 'user:a', limit: 10 })).to.deep.equal(['02', '03']);
    expect(await ids({ resource: 'tasks/1', limit: 10 })).to.deep.equal(['01', '03']);
    expect(await ids({ since: new Date(2000), until: new Date(3000), limit: 10 })).to.deep.equal(['02']);
    expect(await ids({ afterId: '01', limit: 1 })).to.deep.equal(['02']);
    expect((await store.listEvents({ resource: 'tasks/2', limit: 1 }))[0]).to.deep.equal(event('02', 2000, 'user:a', 'tasks/2'));
  });

  it('queues webhook deliveries once and leases due ones', async () => {
    const delivery = (id: string, due: number) => ({
      id,
      hook: 'h',
      eventId: id,
      body: '{}',
      state: 'pending' as const,
      attempts: 0,
      nextAttempt: new Date(due),
      lastError: '',
      created: new Date(0),
    });
    await store.insertDelivery(delivery('d1', 1000));
    await store.insertDelivery(delivery('d2', 5000));
    await store.insertDelivery({ ...delivery('d1', 0), body: 'second' });
    const claimed = await store.claimDueDeliveries(new Date(2000), new Date(9000), 10);
    expect(claimed.map((d) => [d.id, d.body, d.nextAttempt.getTime()])).to.deep.equal([['d1', '{}', 9000]]);
    // d1 is leased until 9000, so only d2 is due at 6000.
    expect((await store.claimDueDeliveries(new Date(6000), new Date(9000), 10)).map((d) => d.id)).to.deep.equal(['d2']);
    await store.updateDelivery('d1', { state: 'delivered', attempts: 1 });
    // Past d2's lease it is due again (its sender died); d1 was delivered.
    expect((await store.claimDueDeliveries(new Date(20_000), new Date(30_000), 10)).map((d) => d.id)).to.deep.equal(['d2']);
    expect(await store.getDelivery('d1')).to.deep.include({ state: 'delivered', attempts: 1 });
  });
});

/** A request record as server/request-ids.ts writes them. */
function requestRecord(overrides: Partial<RequestRecord> = {}): RequestRecord {
  const created = new Date(1_700_000_000_000);
  return {
    caller: 'user:a@x',
    requestId: 'req-00000001',
    method: 'CreateTask',
    hash: 'h1',
    taskId: newTaskId(),
    created,
    expires: new Date(created.getTime() + 1000),
    done: false,
    ...overrides,
  };
}

describeStoreContract('request ids', (kind) => {
  let location: StoreLocation;
  let store: Store;
  openStoreEach(kind, (opened) => ({ location, store } = opened), () => store);

  it('binds a request id once per caller and returns the record that holds it', async () => {
    const first = requestRecord();
    expect(await store.insertRequest(first)).to.equal(null);
    expect(await store.insertRequest(requestRecord({ taskId: 'other', hash: 'h2' }))).to.deep.equal(first);
    // Another caller's id is another key, and so is another id.
    expect(await store.insertRequest(requestRecord({ caller: 'user:b@x' }))).to.equal(null);
    expect(await store.insertRequest(requestRecord({ requestId: 'req-00000002' }))).to.equal(null);
    expect(await store.getRequest(first.caller, first.requestId, first.created)).to.deep.equal(first);
    expect(await store.getRequest('user:c@x', first.requestId, first.created)).to.equal(null);
    await store.completeRequest(first.caller, first.requestId);
    await store.completeRequest(first.caller, first.requestId);
    expect(await store.getRequest(first.caller, first.requestId, first.created)).to.deep.equal({ ...first, done: true });
  });

  it('forgets a request id once it expired, and lets it be bound again', async () => {
    const old = requestRecord();
    await store.insertRequest(old);
    const later = (ms: number) => new Date(old.created.getTime() + ms);
    expect(await store.getRequest(old.caller, old.requestId, later(999))).to.deep.equal(old);
    expect(await store.getRequest(old.caller, old.requestId, later(1000))).to.equal(null);
    const again = requestRecord({ created: later(1000), expires: later(5000), hash: 'h2' });
    expect(await store.insertRequest(again)).to.equal(null);
    expect(await store.getRequest(old.caller, old.requestId, later(1000))).to.deep.equal(again);
    const other = requestRecord({ requestId: 'req-00000009', created: later(1000), expires: later(2000) });
    await store.insertRequest(other);
    expect(await store.deleteExpiredRequests(later(3000), 10)).to.equal(1);
    expect(await store.getRequest(other.caller, other.requestId, later(1500))).to.equal(null);
    expect(await store.getRequest(again.caller, again.requestId, later(3000))).to.deep.equal(again);
  });

  it('lets exactly one of many concurrent binds of one request id win, and they make one task', async () => {
    for (let round = 0; round < 5; round++) {
      const requestId = `race-${round}-0000`;
      const racers = Array.from({ length: 8 }, () => requestRecord({ requestId, taskId: newTaskId() }));
      const holders = await Promise.all(racers.map((r) => store.insertRequest(r)));
      const winners = racers.filter((_, i) => holders[i] === null);
      expect(winners, `round ${round}`).to.have.length(1);
      for (const holder of holders) if (holder) expect(holder.taskId).to.equal(winners[0]!.taskId);
      // Each racer then inserts the task under the id it was given (as CreateTask does).
      await Promise.all(
        holders.map(async (holder, i) => {
          try {
            await store.insertTask(task({ id: holder?.taskId ?? racers[i]!.taskId, target: `race-${round}` }));
          } catch (err) {
            if (!(err instanceof AlreadyExistsError)) throw err;
          }
        }),
      );
      expect((await store.listTasks({ target: `race-${round}`, limit: 10 })).map((t) => t.id)).to.deep.equal([winners[0]!.taskId]);
    }
  });

  it('binds a request id and inserts its task in one call; a repeat gets the binding and inserts nothing', async () => {
    const first = requestRecord();
    const made = task({ id: first.taskId, target: 'bind-1' });
    expect(await insertRequestAndTask(store, first, made)).to.equal(null);
    expect(await store.getTask(made.id)).to.deep.equal(made);
    expect(await store.getRequest(first.caller, first.requestId, first.created)).to.deep.equal(first);
    // A repeat (another task id, as each CreateTask call draws one) is answered with the binding.
    const repeat = requestRecord();
    expect(await insertRequestAndTask(store, repeat, task({ id: repeat.taskId, target: 'bind-1' }))).to.deep.equal(first);
    expect(await store.getTask(repeat.taskId)).to.equal(null);
    // Once the binding expired, the id is free: bound again, with its new task.
    const later = requestRecord({ created: new Date(first.expires.getTime()), expires: new Date(first.expires.getTime() + 1000) });
    expect(await insertRequestAndTask(store, later, task({ id: later.taskId, target: 'bind-1' }))).to.equal(null);
    expect((await store.listTasks({ target: 'bind-1', limit: 10 })).map((t) => t.id).sort()).to.deep.equal([made.id, later.taskId].sort());
    expect(await store.getRequest(later.caller, later.requestId, later.created)).to.deep.equal(later);
  });

  it('refuses a task id taken, binding nothing where binding and insert are one step', async () => {
    const taken = task();
    await store.insertTask(taken);
    const record = requestRecord({ requestId: 'req-taken-01', taskId: taken.id });
    let error: unknown;
    try {
      await insertRequestAndTask(store, record, task({ id: taken.id, message: 'other' }));
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(AlreadyExistsError);
    expect((await store.getTask(taken.id))?.message).to.equal(taken.message);
    // The two-step fallback keeps the binding (CreateTask's repeat inserts the task it names).
    const kept = await store.getRequest(record.caller, record.requestId, record.created);
    expect(kept).to.deep.equal(store.insertRequestAndTask ? null : record);
  });

  it('makes one task of many binds of one request id raced from store instances on one database', async function () {
    this.timeout(60_000);
    for (let round = 0; round < 3; round++) {
      const answers = (await raceStores(
        location.options,
        [1, 2, 3].map(() => ({ op: 'bindTask', requestId: `bind-race-${round}`, target: `bind-race-${round}`, times: 3 })),
      )).flat();
      const tasks = await store.listTasks({ target: `bind-race-${round}`, limit: 20 });
      expect(tasks.map((t) => t.id), `round ${round}`).to.deep.equal([answers[0]]);
      expect(new Set(answers), `round ${round}: every call answered with that task`).to.deep.equal(new Set([answers[0]]));
    }
  });

  it("applies a request's change to a task once, however many repeats race", async () => {
    const t = task({ status: 'approved' });
    await store.insertTask(t);
    const request = requestOf('user:a@x', 'RunTask', 'run-00000001', [t.id])!;
    const run = (x: TaskRecord) => applyTransition(x, move(x.id, ['approved'], 'ready'));
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => applyOnce(store, t.id, request, run)));
    expect(outcomes.filter((o) => o?.applied)).to.have.length(1);
    expect(outcomes.every((o) => o?.task.status === 'ready')).to.equal(true);
    const final = await store.getTask(t.id);
    expect([final?.requestMarks, final?.events.length]).to.deep.equal([[request.mark], 2]);
    // Once marked, it stays done even where the change could apply again.
    await store.updateTask(t.id, (x) => ({ ...x, status: 'approved' }));
    expect((await applyOnce(store, t.id, request, run))?.applied).to.equal(false);
    expect((await store.getTask(t.id))?.status).to.equal('approved');
  });
});
