/**
 * The Store contract, run unchanged against the embedded SQLite store and
 * MongoDB (FerretDB v1 here), in two files by record kind: this one holds
 * tasks and their claims, store-contract-records.test.ts the other records
 * (output, request ids, targets, agents and tokens, users, audit events,
 * webhook deliveries); test/helpers/store-contract.ts opens the stores.
 * The concurrency tests race store instances in worker threads on one
 * location (test/helpers/store-worker.ts): calls through one SqliteStore run
 * one at a time by construction, so only separate connections racing in
 * parallel can show a lost update there.
 */
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import { join } from 'node:path';
import type { TaskStatus } from '../../shared/task-status.js';
import { openStore } from '../../server/store/open-store.js';
import type { Store, TaskRecord } from '../../server/store/store.js';
import { describeStoreContract, move, openStoreEach, task } from '../helpers/store-contract.js';
import { raceStores } from '../helpers/store-worker.js';
import type { StoreLocation } from '../helpers/stores.js';

describeStoreContract('tasks and claims', (kind) => {
  let location: StoreLocation;
  let store: Store;
  openStoreEach(kind, (opened) => ({ location, store } = opened), () => store);

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
