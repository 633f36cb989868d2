/**
 * The Store contract, run unchanged against the embedded SQLite store and
 * MongoDB (FerretDB v1 here). The concurrency tests race store instances in
 * worker threads on one location (test/helpers/store-worker.ts): calls
 * through one SqliteStore run one at a time by construction, so only
 * separate connections racing in parallel can show a lost update there.
 */
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import { join } from 'node:path';
import { AlreadyExistsError } from '../../shared/errors.js';
import { newTaskId } from '../../shared/ids.js';
import type { TaskStatus } from '../../shared/task-status.js';
import { openStore } from '../../server/store/open-store.js';
import type { AgentRecord, Store, TargetRecord, TaskRecord } from '../../server/store/store.js';
import { taskRecord, targetRecord } from '../helpers/records.js';
import { raceStores } from '../helpers/store-worker.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';
// For the request-id cases at the end.
import { applyOnce, requestOf } from '../../server/request-ids.js';
import { applyTransition, insertRequestAndTask, type RequestRecord } from '../../server/store/store.js';

function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
  return taskRecord({ message: 'why', script: 'echo hi', ...overrides });
}

function target(name: string, overrides: Partial<TargetRecord> = {}): TargetRecord {
  return targetRecord(name, { agent: 'x', ...overrides });
}

function agent(overrides: Partial<AgentRecord> = {}): AgentRecord {
  return { name: 'a1', version: '1', bootId: 'b', lastSeen: null, connected: false, tokenId: '', secretHashes: [], ...overrides };
}

function move(id: string, from: TaskStatus[], to: TaskStatus, patch = {}) {
  return { id, from, to, patch, actor: 'test', reason: `to ${to}`, time: new Date() };
}

for (const kind of STORE_KINDS) {
  describe(`Store contract: ${kind.name}`, function () {
    let location: StoreLocation;
    let store: Store;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      store = await openStore(location.options);
    });

    afterEach(async () => {
      await store?.close();
      location?.cleanup();
    });

    it('stores and returns a task with every field and its dates', async () => {
      const t = task({ started: new Date(1_700_000_000_000), exitCode: 0, outputBytes: 12 });
      await store.insertTask(t);
      expect(await store.getTask(t.id)).to.deep.equal(t);
      expect(await store.getTask('missing')).to.equal(null);
    });

    it('makes transitions conditional and records each as an event', async () => {
      const t = task();
      await store.insertTask(t);
      const ready = await store.transition(move(t.id, ['created'], 'ready', { agent: 'a1' }));
      expect(ready?.status).to.equal('ready');
      expect(ready?.agent).to.equal('a1');
      expect(ready?.events.map((e) => [e.from, e.to])).to.deep.equal([[null, 'created'], ['created', 'ready']]);
      expect(await store.transition(move(t.id, ['created'], 'killed'))).to.equal(null);
      expect((await store.getTask(t.id))?.status).to.equal('ready');
      expect(await store.transition(move('missing', ['created'], 'ready'))).to.equal(null);
    });

    it('lets exactly one of many concurrent transitions win, across store instances on one database', async () => {
      // Several server processes on one store: each worker thread has its own store on this location.
      const tasks = Array.from({ length: 40 }, () => task({ status: 'running' }));
      for (const t of tasks) await store.insertTask(t);
      const ids = tasks.map((t) => t.id);
      const targets: TaskStatus[] = ['success', 'failure', 'killed'];
      const outcomes = await raceStores(
        location.options,
        targets.map((to) => ({ op: 'transition', ids, from: 'running', to, actor: `racer:${to}` })),
      );
      for (const [i, t] of tasks.entries()) {
        const winners = targets.filter((_, w) => outcomes[w]![i] !== null);
        expect(winners, `${t.id}: transitions that reported success`).to.have.length(1);
        const final = await store.getTask(t.id);
        expect(final?.status, t.id).to.equal(winners[0]);
        expect(final?.events.map((e) => [e.from, e.to, e.actor]), t.id).to.deep.equal([
          [null, 'created', 'user:admin@test'],
          ['running', winners[0], `racer:${winners[0]}`],
        ]);
      }
    });

    it('patches fields only while the task is in the given status', async () => {
      const t = task({ status: 'running' });
      await store.insertTask(t);
      const started = new Date(1_700_000_000_123);
      expect((await store.patchTask(t.id, 'running', { started }))?.started).to.deep.equal(started);
      expect(await store.patchTask(t.id, 'ready', { signal: 'x' })).to.equal(null);
    });

    it('claims ready tasks of one agent oldest first, each exactly once', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const t = task({ status: 'ready', agent: i % 2 === 0 ? 'a1' : 'a2' });
        ids.push(t.id);
        await store.insertTask(t);
      }
      const claims = await Promise.all([1, 2, 3, 4].map(() => store.claimNextReady('a1', 'boot1', new Date())));
      const claimed = claims.filter((c) => c !== null).map((c) => c!.id);
      expect(claimed.sort()).to.deep.equal([ids[0], ids[2], ids[4]]);
      const first = await store.getTask(ids[0]!);
      expect([first?.status, first?.bootId, first?.events.at(-1)?.from]).to.deep.equal(['running', 'boot1', 'ready']);
      expect((await store.claimNextReady('a2', 'b', new Date()))?.id).to.equal(ids[1]);
    });

    it('claims each ready task exactly once when store instances on one database claim at the same time', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const t = task({ status: 'ready', agent: 'a1' });
        ids.add(t.id);
        await store.insertTask(t);
      }
      const boots = ['boot1', 'boot2', 'boot3'];
      const claims = await raceStores(
        location.options,
        boots.map((bootId) => ({ op: 'claim', agent: 'a1', bootId, parallel: 2 })),
      );
      const all = claims.flat();
      expect(all.length, 'claims made').to.equal(ids.size);
      expect(new Set(all), 'claimed tasks').to.deep.equal(ids);
      for (const [w, claimed] of claims.entries()) {
        for (const id of claimed) {
          const t = await store.getTask(id!);
          expect([t?.status, t?.bootId, t?.events.length], id!).to.deep.equal(['running', boots[w], 2]);
        }
      }
    });

    it('claims a ready task on every call while any is left, when store instances on one database claim at the same time', async () => {
      // Every worker wants the same oldest task each time: the pick and the
      // claim must be one atomic step, or a worker that loses the oldest one
      // answers "none ready" although others are.
      const boots = ['boot1', 'boot2', 'boot3'];
      const times = 15;
      const ids = new Set<string>();
      for (let i = 0; i < boots.length * times; i++) {
        const t = task({ status: 'ready', agent: 'a1' });
        ids.add(t.id);
        await store.insertTask(t);
      }
      const claims = await raceStores(
        location.options,
        boots.map((bootId) => ({ op: 'claimTimes', agent: 'a1', bootId, times })),
      );
      const all = claims.flat();
      expect(all.filter((id) => id === null).length, 'calls that found no ready task while some were left').to.equal(0);
      expect(new Set(all), 'claimed tasks').to.deep.equal(ids);
      for (const claimed of claims) expect([...claimed].sort(), 'each worker claims oldest first').to.deep.equal(claimed);
    });

    it('lists tasks newest first with status, target and agent filters and paging', async () => {
      const made: TaskRecord[] = [];
      for (let i = 0; i < 5; i++) {
        const t = task({ target: i < 3 ? 'x' : 'y', status: i % 2 ? 'ready' : 'created', agent: 'a' });
        made.push(t);
        await store.insertTask(t);
      }
      const all = await store.listTasks({ limit: 10 });
      expect(all.map((t) => t.id)).to.deep.equal(made.map((t) => t.id).reverse());
      expect((await store.listTasks({ target: 'x', limit: 10 })).map((t) => t.id)).to.deep.equal(
        made.slice(0, 3).map((t) => t.id).reverse(),
      );
      expect((await store.listTasks({ statuses: ['ready'], limit: 10 })).map((t) => t.id)).to.deep.equal([made[3]!.id, made[1]!.id]);
      const page1 = await store.listTasks({ limit: 2 });
      const page2 = await store.listTasks({ limit: 2, beforeId: page1[1]!.id });
      expect([...page1, ...page2].map((t) => t.id)).to.deep.equal(all.slice(0, 4).map((t) => t.id));
      expect(await store.hasUnfinishedTasks('x')).to.equal(true);
      expect(await store.hasUnfinishedTasks('z')).to.equal(false);
    });

    it('lists only tasks with one of the audience keys, newest first, with the other filters and paging', async () => {
      const review = (group: string) => [{ group, status: 'pending' as const, reviewer: '', comment: '', time: null }];
      const mine = task({ createdBy: 'user:me@x', target: 'hidden' });
      const onMyTarget = task({ target: 'open', status: 'ready' });
      const forMyGroup = task({ target: 'hidden', review: review('dba') });
      const someoneElses = task({ target: 'hidden', createdBy: 'user:other@x', review: review('sec') });
      const anyone = task({ target: 'hidden', review: review('') });
      for (const t of [mine, onMyTarget, forMyGroup, someoneElses, anyone]) await store.insertTask(t);
      // After a transition the keys are the same: they are fixed at creation.
      await store.transition({ id: mine.id, from: ['created'], to: 'ready', time: new Date(), actor: 'system', reason: 'test' });
      const keys = ['by:user:me@x', 'target:open', 'group:dba', 'group:ops'];
      const ids = (list: TaskRecord[]) => list.map((t) => t.id);
      expect(ids(await store.listTasks({ audience: keys, limit: 10 }))).to.deep.equal([forMyGroup.id, onMyTarget.id, mine.id]);
      expect(ids(await store.listTasks({ audience: keys, statuses: ['ready'], limit: 10 }))).to.deep.equal([onMyTarget.id, mine.id]);
      expect(ids(await store.listTasks({ audience: keys, target: 'hidden', limit: 10 }))).to.deep.equal([forMyGroup.id, mine.id]);
      const first = await store.listTasks({ audience: keys, limit: 2 });
      expect(ids(await store.listTasks({ audience: keys, limit: 2, beforeId: first[1]!.id }))).to.deep.equal([mine.id]);
      expect(await store.listTasks({ audience: ['group:nobody'], limit: 10 })).to.deep.equal([]);
      // A task under several of the keys comes once.
      expect(ids(await store.listTasks({ audience: ['by:user:me@x', 'target:hidden'], limit: 10 }))).to.deep.equal([anyone.id, someoneElses.id, forMyGroup.id, mine.id]);
    });

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

    it('lists tasks with unpublished events until they are published', async () => {
      const a = task();
      const b = task({ published: 1 });
      await store.insertTask(a);
      await store.insertTask(b);
      expect((await store.listUnpublished(10)).map((t) => t.id)).to.deep.equal([a.id]);
      await store.updateTask(a.id, (t) => ({ ...t, published: t.events.length }));
      expect(await store.listUnpublished(10)).to.deep.equal([]);
      await store.transition(move(b.id, ['created'], 'ready'));
      expect((await store.listUnpublished(10)).map((t) => [t.id, t.events.at(-1)?.action])).to.deep.equal([[b.id, 'task.ready']]);
    });

    it('applies concurrent read-modify-write updates of one task from several store instances one after another', async () => {
      const t = task();
      await store.insertTask(t);
      const scripts = ['a', 'b', 'c'].map((w) => ({ op: 'append' as const, id: t.id, groups: Array.from({ length: 15 }, (_, i) => `${w}${i}`) }));
      await raceStores(location.options, scripts);
      const groups = (await store.getTask(t.id))?.review.map((r) => r.group).sort();
      expect(groups, 'no update was lost').to.deep.equal(scripts.flatMap((s) => s.groups).sort());
    });

    it('gives tasks stored before audience keys existed theirs when it opens', async () => {
      const old = task({ createdBy: 'user:me@x', target: 'hidden' });
      await store.insertTask(old);
      await store.close();
      // What an older Taskgate left: no audience keys at all.
      if (location.options.mongodbUri) {
        const client = await MongoClient.connect(location.options.mongodbUri);
        await client.db(new URL(location.options.mongodbUri).pathname.slice(1) || 'taskgate').collection('tasks').updateMany({}, { $unset: { audience: '' } });
        await client.close();
      } else {
        const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
        db.exec('DROP TABLE task_audience');
        db.close();
      }
      store = await openStore(location.options);
      expect((await store.listTasks({ audience: ['by:user:me@x'], limit: 10 })).map((t) => t.id)).to.deep.equal([old.id]);
    });

    it('counts tasks by status through inserts, moves, racing moves, deletions and a reopen', async () => {
      const [a, b, c] = [task(), task(), task()];
      for (const t of [a, b, c]) await store.insertTask(t!);
      expect(await store.countTasksByStatus()).to.deep.equal({ created: 3 });
      await store.transition(move(a!.id, ['created'], 'ready', { agent: 'a1' }));
      await store.patchTask(b!.id, 'created', { findings: { EMAIL: 1 } });
      // Racing moves of one task: one wins, and it is counted once.
      await Promise.all(Array.from({ length: 5 }, () => store.transition(move(c!.id, ['created'], 'killed'))));
      expect(await store.countTasksByStatus()).to.deep.equal({ created: 1, ready: 1, killed: 1 });
      await store.updateTask(c!.id, (t) => ({ ...t, published: t.events.length }));
      await store.deleteEndedTasks(new Date(Date.now() + 60_000), { tasks: 10, chunks: 10 });
      expect(await store.countTasksByStatus()).to.deep.equal({ created: 1, ready: 1 });
      await store.close();
      if (!location.options.mongodbUri) {
        // A data dir from before the counts were kept: counted once when it opens.
        const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
        db.exec('DROP TABLE task_counts');
        db.close();
      }
      store = await openStore(location.options);
      expect(await store.countTasksByStatus()).to.deep.equal({ created: 1, ready: 1 });
    });

    it('keeps everything across a reopen', async () => {
      const t = task();
      await store.insertTask(t);
      await store.putChunk({ taskId: t.id, seq: 0, offset: 0, data: Buffer.from('kept') });
      await store.close();
      store = await openStore(location.options);
      expect((await store.getTask(t.id))?.script).to.equal('echo hi');
      expect((await store.readChunks(t.id, { afterSeq: -1 }, 10))[0]?.data.toString()).to.equal('kept');
    });
  });
}

for (const kind of STORE_KINDS) {
  describe(`Store contract: output counters, ${kind.name}`, function () {
    let location: StoreLocation;
    let store: Store;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      store = await openStore(location.options);
    });

    afterEach(async () => {
      await store?.close();
      location?.cleanup();
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
}

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

for (const kind of STORE_KINDS) {
  describe(`Store contract: request ids, ${kind.name}`, function () {
    let location: StoreLocation;
    let store: Store;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      store = await openStore(location.options);
    });

    afterEach(async () => {
      await store?.close();
      location?.cleanup();
    });

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
}
