/**
 * The Store contract, run unchanged against the embedded SQLite store and
 * MongoDB (FerretDB v1 here).
 */
import { expect } from 'chai';
import { AlreadyExistsError } from '../../shared/errors.js';
import { newTaskId } from '../../shared/ids.js';
import type { TaskStatus } from '../../shared/task-status.js';
import { openStore } from '../../server/store/open-store.js';
import type { Store, TaskRecord } from '../../server/store/store.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
  const now = new Date();
  return {
    id: newTaskId(),
    created: now,
    message: 'why',
    script: 'echo hi',
    type: 'bash',
    target: 't1',
    status: 'created',
    createdBy: 'admin',
    agent: '',
    bootId: '',
    started: null,
    finished: null,
    exitCode: null,
    signal: '',
    failureReason: '',
    outputBytes: 0,
    events: [{ time: now, actor: 'admin', from: null, to: 'created', reason: 'created' }],
    ...overrides,
  };
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

    it('lets exactly one of many concurrent transitions win', async () => {
      const t = task({ status: 'running' });
      await store.insertTask(t);
      const outcomes = await Promise.all(
        (['success', 'failure', 'killed', 'success', 'failure', 'killed'] as TaskStatus[]).map((to) =>
          store.transition(move(t.id, ['running'], to)),
        ),
      );
      const winners = outcomes.filter((o) => o !== null);
      expect(winners).to.have.length(1);
      const final = await store.getTask(t.id);
      expect(final?.status).to.equal(winners[0]?.status);
      expect(final?.events).to.have.length(2);
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

    it('keeps binary output byte for byte', async () => {
      const id = newTaskId();
      const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await store.putChunk({ taskId: id, seq: 0, offset: 0, data });
      expect((await store.readChunks(id, { afterSeq: -1 }, 1))[0]?.data.equals(data)).to.equal(true);
    });

    it('manages targets: unique names, paging by name, update, delete', async () => {
      const now = new Date();
      for (const name of ['b', 'a', 'c']) await store.insertTarget({ name, type: 'bash', agent: 'x', message: '', created: now, updated: now });
      let error: unknown;
      try {
        await store.insertTarget({ name: 'a', type: 'sh', agent: 'y', message: '', created: now, updated: now });
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(AlreadyExistsError);
      expect((await store.listTargets('', 2)).map((t) => t.name)).to.deep.equal(['a', 'b']);
      expect((await store.listTargets('b', 2)).map((t) => t.name)).to.deep.equal(['c']);
      const later = new Date(now.getTime() + 1000);
      const updated = await store.updateTarget('a', { agent: 'z' }, later);
      expect([updated?.agent, updated?.type, updated?.updated.getTime()]).to.deep.equal(['z', 'bash', later.getTime()]);
      expect(await store.updateTarget('nope', { agent: 'z' }, later)).to.equal(null);
      expect(await store.deleteTarget('a')).to.equal(true);
      expect(await store.deleteTarget('a')).to.equal(false);
      expect(await store.getTarget('a')).to.equal(null);
    });

    it('remembers agents and finds tokens by hash', async () => {
      await store.putAgent({ name: 'a1', version: '1', bootId: 'b', lastSeen: null, connected: false });
      await store.putAgent({ name: 'a1', version: '2', bootId: 'c', lastSeen: new Date(5), connected: true });
      expect(await store.listAgents()).to.deep.equal([{ name: 'a1', version: '2', bootId: 'c', lastSeen: new Date(5), connected: true }]);
      const token = { id: 'id1', hash: 'h1', kind: 'agent' as const, subject: 'a1', created: new Date(7) };
      await store.insertToken(token);
      expect(await store.findTokenByHash('h1')).to.deep.equal(token);
      expect(await store.findTokenByHash('h2')).to.equal(null);
      expect([await store.countTokens('agent'), await store.countTokens('admin')]).to.deep.equal([1, 0]);
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
