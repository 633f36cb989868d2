/**
 * The Store's batch forms (claimReady, updateTaskWithOutput, insertEvents,
 * markPublished, recordsTaskEvents), through the functions the server
 * calls, so a store with a batch form and one falling back to the single
 * forms must agree: run against both stores like store-contract*.test.ts.
 */
import { expect } from 'chai';
import { openStore } from '../../server/store/open-store.js';
import {
  claimReady,
  insertEvents,
  type OutputTotals,
  markPublished,
  taskAuditEvent,
  updateAgentsPresence,
  updateTaskWithOutput,
  type Store,
  type TargetRecord,
  type TaskRecord,
} from '../../server/store/store.js';
import { readyTaskRecord, targetRecord } from '../helpers/records.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
  return readyTaskRecord(overrides);
}

function target(name: string, redact: string[]): TargetRecord {
  return targetRecord(name, { redact });
}

for (const kind of STORE_KINDS) {
  describe(`Store batch forms: ${kind.name}`, function () {
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

    it('claims an agent\'s ready tasks oldest first, each once, with their targets as they are', async function () {
      this.timeout(60_000);
      await store.insertTarget(target('t1', ['EMAIL_ADDRESS']));
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const t = task();
        ids.push(t.id);
        await store.insertTask(t);
      }
      await store.insertTask(task({ agent: 'other' }));
      const claimed: TaskRecord[] = [];
      for (;;) {
        const batch = await claimReady(store, 'a1', 'boot-1', new Date(), 3);
        for (const t of batch.tasks) {
          expect(batch.targets.get(t.target)?.redact).to.deep.equal(['EMAIL_ADDRESS']);
          claimed.push(t);
        }
        if (batch.exhausted) break;
      }
      expect(claimed.map((t) => t.id)).to.deep.equal(ids);
      for (const t of claimed) {
        expect(t.status).to.equal('running');
        expect(t.bootId).to.equal('boot-1');
        expect(t.events.at(-1)).to.include({ from: 'ready', to: 'running', actor: 'agent:a1' });
        expect((await store.getTask(t.id))?.status).to.equal('running');
      }
      expect((await claimReady(store, 'a1', 'boot-1', new Date(), 3)).tasks).to.deep.equal([]);
    });

    it('ends a task from its stored output in one step, and counts the output whatever the writer says', async function () {
      const t = task({ status: 'running' });
      await store.insertTask(t);
      await store.putChunk({ taskId: t.id, seq: 0, offset: 0, data: Buffer.from('hello ') });
      await store.putChunk({ taskId: t.id, seq: 1, offset: 6, data: Buffer.from('world') });
      let seen: { chunks: number; bytes: number } | null = null;
      const ended = await updateTaskWithOutput(store, t.id, (current, output) => {
        seen = output;
        return { ...current, status: 'success', outputBytes: 999, finished: new Date() };
      });
      expect(seen).to.deep.equal({ chunks: 2, bytes: 11 });
      expect(ended?.status).to.equal('success');
      expect(ended?.outputBytes).to.equal(11);
      expect((await store.getTask(t.id))?.outputBytes).to.equal(11);
      expect(await updateTaskWithOutput(store, t.id, () => null)).to.equal(null);
      expect(await updateTaskWithOutput(store, 'no-such-task', () => task())).to.equal(null);
    });

    it("ends a task and claims its agent's next ready tasks, oldest first, in one step; no end, no claim", async function () {
      if (!store.finishAndClaimNext) this.skip();
      await store.insertTarget(target('t1', ['EMAIL_ADDRESS']));
      const done = task({ status: 'running', bootId: 'boot-1' });
      await store.insertTask(done);
      const ready = [task(), task(), task()];
      for (const t of ready) await store.insertTask(t);
      await store.insertTask(task({ agent: 'other' }));
      await store.putChunk({ taskId: done.id, seq: 0, offset: 0, data: Buffer.from('bye') });
      const next = { agent: 'a1', bootId: 'boot-1', time: new Date(), limit: 1 };
      let seen: OutputTotals | null = null;
      const first = await store.finishAndClaimNext(
        done.id,
        (current, output) => {
          seen = output;
          return current.status === 'running' ? { ...current, status: 'success', finished: new Date() } : null;
        },
        next,
      );
      expect(seen).to.deep.equal({ chunks: 1, bytes: 3 });
      expect([first.task?.status, first.task?.outputBytes]).to.deep.equal(['success', 3]);
      expect(first.claimed.tasks.map((t) => [t.id, t.status, t.bootId])).to.deep.equal([[ready[0]!.id, 'running', 'boot-1']]);
      expect(first.claimed.targets.get('t1')?.redact).to.deep.equal(['EMAIL_ADDRESS']);
      expect((await store.getTask(ready[0]!.id))?.status).to.equal('running');
      expect((await store.getTask(ready[1]!.id))?.status).to.equal('ready');
      // Declined (already ended): nothing written, nothing claimed.
      const again = await store.finishAndClaimNext(done.id, (current) => (current.status === 'running' ? current : null), next);
      expect([again.task, again.claimed.tasks]).to.deep.equal([null, []]);
      expect((await store.getTask(ready[1]!.id))?.status).to.equal('ready');
      // Up to the limit, fewer when fewer are ready.
      const running = ready[0]!;
      const last = await store.finishAndClaimNext(running.id, (current) => ({ ...current, status: 'failure', finished: new Date() }), { ...next, limit: 5 });
      expect(last.task?.status).to.equal('failure');
      expect(last.claimed.tasks.map((t) => t.id)).to.deep.equal([ready[1]!.id, ready[2]!.id]);
      expect(await store.finishAndClaimNext('no-such-task', () => task(), next)).to.deep.equal({ task: null, claimed: { tasks: [], targets: new Map() } });
    });

    it('publishes events: audit records stored once, `published` only forward', async function () {
      const t = task();
      await store.insertTask(t);
      const events = t.events.map((_, i) => taskAuditEvent(t, i));
      await insertEvents(store, events);
      await insertEvents(store, events);
      const listed = await store.listEvents({ resource: `tasks/${t.id}`, limit: 10 });
      expect(listed.map((e) => e.id)).to.deep.equal(events.map((e) => e.id));
      expect((await store.listUnpublished(10)).map((u) => u.id)).to.include(t.id);
      await markPublished(store, [{ id: t.id, published: 2 }, { id: 'no-such-task', published: 1 }]);
      await markPublished(store, [{ id: t.id, published: 1 }]);
      expect((await store.getTask(t.id))?.published).to.equal(2);
      expect((await store.listUnpublished(10)).map((u) => u.id)).not.to.include(t.id);
    });

    it('refreshes several agents\' presence in one step and skips unknown agents', async function () {
      for (const name of ['p1', 'p2']) await store.putAgent({ name, version: '1', bootId: 'b', lastSeen: null, connected: false, tokenId: '', secretHashes: [] });
      const seen = new Date(1_800_000_000_000);
      await updateAgentsPresence(store, [
        { name: 'p1', presence: { lastSeen: seen, connected: true } },
        { name: 'no-such-agent', presence: { lastSeen: seen, connected: true } },
        { name: 'p2', presence: { lastSeen: seen, connected: true } },
      ]);
      for (const name of ['p1', 'p2']) expect(await store.getAgent(name)).to.deep.include({ lastSeen: seen, connected: true, bootId: 'b' });
      expect(await store.getAgent('no-such-agent')).to.equal(null);
    });

    it('stores the new events of a batch that repeats some stored ones', async function () {
      const t = task();
      await store.insertTask(t);
      const [first, second] = t.events.map((_, i) => taskAuditEvent(t, i));
      await insertEvents(store, [first!]);
      await insertEvents(store, [first!, second!, first!]);
      const listed = await store.listEvents({ resource: `tasks/${t.id}`, limit: 10 });
      expect(listed.map((e) => e.id)).to.deep.equal([first!.id, second!.id]);
    });

    it('records a task\'s events with its writes when it says it does', async function () {
      if (!store.recordsTaskEvents) this.skip();
      const t = task();
      await store.insertTask(t);
      await store.transition({ id: t.id, from: ['ready'], to: 'running', actor: 'agent:a1', reason: 'handed to agent', time: new Date() });
      const after = (await store.getTask(t.id))!;
      const listed = await store.listEvents({ resource: `tasks/${t.id}`, limit: 10 });
      expect(listed.map((e) => e.id)).to.deep.equal(after.events.map((_, i) => taskAuditEvent(after, i).id));
      expect(listed.map((e) => e.to)).to.deep.equal(['created', 'ready', 'running']);
    });
  });
}
