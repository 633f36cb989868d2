/**
 * Read-modify-writes of one target, user or token from two store instances
 * on one database (two server replicas): each racing update changes its own
 * field, and none may be lost. On FerretDB a conditional update evaluates
 * its filter and then rewrites the whole document, so without the
 * per-document lock (server/store/mongo-locks.ts) racing updates of
 * different fields undo each other. In one thread two SQLite stores cannot
 * interleave (better-sqlite3 is synchronous); the suite runs there too as
 * the contract's statement of what a store must do.
 *
 * Then records as earlier releases stored them, written into each store's
 * database directly: they read in the current shape, and a record of a
 * newer version is refused.
 */
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import { join } from 'node:path';
import { openStore } from '../../server/store/open-store.js';
import { RecordVersionError } from '../../server/store/record-codecs.js';
import { taskAudience, type Store, type TargetPatch, type TaskRecord, type TokenRecord, type UserPatch } from '../../server/store/store.js';
import { OLD_DOCS, readyTaskRecord, targetRecord, withBsonDates } from '../helpers/records.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

/** How many updates of a user race, split between the two instances. */
const RACERS = 20;
/** Rounds of racing updates a test makes, each checked. */
const ROUNDS = 3;

for (const kind of STORE_KINDS) {
  describe(`Store contract: racing updates of one document, ${kind.name}`, function () {
    let location: StoreLocation;
    let stores: Store[] = [];

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      stores = [await openStore(location.options), await openStore(location.options)];
    });

    afterEach(async () => {
      for (const store of stores) await store.close();
      stores = [];
      location?.cleanup();
    });

    /** The store the i-th racer goes through: alternately one replica and the other. */
    const via = (i: number): Store => stores[i % 2]!;

    it('loses none of the concurrent updates of different fields of one target', async () => {
      await stores[0]!.insertTarget(targetRecord('t1'));
      for (let round = 0; round < ROUNDS; round++) {
        // One racer per field the patch may set, alternately through each replica.
        const patches = targetPatches(round);
        await Promise.all(patches.map((patch, i) => via(i).updateTarget('t1', patch, new Date(1_700_000_000_000 + i))));
        const final = await stores[1]!.getTarget('t1');
        for (const patch of patches) expect(final, `round ${round}: ${Object.keys(patch).join()}`).to.deep.include(patch);
      }
    });

    it('loses none of 20 concurrent updates of different fields of one user', async () => {
      const now = new Date(1_700_000_000_000);
      await stores[0]!.insertUser({ email: 'u@x', name: 'u', groups: [], active: true, created: now, updated: now });
      for (let round = 0; round < ROUNDS; round++) {
        const patches: UserPatch[] = [{ name: `name-${round}` }, { groups: [`g${round}`] }, { active: round % 2 === 1 }];
        await Promise.all(Array.from({ length: RACERS }, (_, i) => via(i).updateUser('u@x', patches[i % 3]!, now)));
        const final = await stores[1]!.getUser('u@x');
        expect([final?.name, final?.groups, final?.active], `round ${round}`).to.deep.equal([`name-${round}`, [`g${round}`], round % 2 === 1]);
      }
    });

    it('never undoes a revocation with a racing lastUsed refresh', async () => {
      const token: TokenRecord = {
        id: 'tok1',
        hash: 'h1',
        kind: 'user',
        subject: 'u@x',
        name: 'cli',
        created: new Date(1_700_000_000_000),
        createdBy: 'system',
        revoked: null,
        expires: null,
        lastUsed: null,
      };
      await stores[0]!.insertToken(token);
      const revokedAt = new Date(1_700_000_100_000);
      await Promise.all([
        ...Array.from({ length: RACERS - 1 }, (_, i) => via(i).touchToken('tok1', new Date(1_700_000_000_000 + i))),
        via(1).revokeToken('tok1', revokedAt),
      ]);
      expect((await stores[0]!.getToken('tok1'))?.revoked).to.deep.equal(revokedAt);
    });
  });
}

/** One patch per TargetPatch field, each with a value that differs from round to round and from the fixture's. */
function targetPatches(round: number): TargetPatch[] {
  return [
    { type: `sh${round}` },
    { agent: `a${round}` },
    { message: `m${round}` },
    { review: round % 2 === 0 ? 'team' : 'anyone' },
    { reviewers: [`DBA${round}`] },
    { groups: [`ops${round}`] },
    { allowTypeOverride: round % 2 === 0 },
    { active: round % 2 === 1 },
    { timeoutSeconds: 10 + round },
    { redact: [`EMAIL${round}`] },
    { customDetectors: [{ infoType: `T${round}`, pattern: 'x+' }] },
    { secretProvider: round % 2 === 0 ? 'env' : 'file' },
    { secretPath: `/etc/s${round}` },
    { secretMapping: { [`K${round}`]: 'k' } },
    { runAs: `user${round}` },
    { distinctReviewers: round % 2 === 1 },
  ];
}

type Kind = 'task' | 'target' | 'agent' | 'token' | 'user';

/** A task as the first releases stored it: no reviews, no outbox counter. */
type OldTask = Omit<TaskRecord, 'review' | 'published'> & Partial<Pick<TaskRecord, 'review' | 'published'>>;

/** Writes stored documents (JSON as the embedded store holds them) straight into a closed store's database, as the release that wrote them did. */
async function writeRaw(location: StoreLocation, docs: Array<[Kind, string]>): Promise<void> {
  if (location.options.mongodbUri) {
    const uri = location.options.mongodbUri;
    const client = await MongoClient.connect(uri);
    try {
      const db = client.db(new URL(uri).pathname.slice(1) || 'taskgate');
      for (const [kind, json] of docs) {
        const doc = withBsonDates(json);
        const key = { task: 'id', target: 'name', agent: 'name', token: 'id', user: 'email' }[kind];
        const { [key]: _id, ...rest } = doc;
        // Tokens kept their id beside _id; tasks had their outbox flag and audience keys.
        const stored: Record<string, unknown> = kind === 'token' ? { _id, ...doc } : { _id, ...rest };
        if (kind === 'task') {
          const task = JSON.parse(json) as OldTask;
          Object.assign(stored, { outbox: task.events.length > (task.published ?? task.events.length), audience: taskAudience({ ...task, review: task.review ?? [] }) });
        }
        await db.collection<{ _id: string }>(`${kind}s`).insertOne(stored as { _id: string });
      }
    } finally {
      await client.close();
    }
    return;
  }
  const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
  try {
    for (const [kind, json] of docs) {
      const doc = JSON.parse(json) as Record<string, string>;
      if (kind === 'task') {
        const task = JSON.parse(json) as OldTask;
        db.prepare('INSERT INTO tasks (id, status, target, agent, doc, unpublished) VALUES (?, ?, ?, ?, ?, ?)')
          .run(task.id, task.status, task.target, task.agent, json, task.events.length > (task.published ?? task.events.length) ? 1 : 0);
        for (const key of taskAudience({ ...task, review: task.review ?? [] })) db.prepare('INSERT INTO task_audience (key, task_id) VALUES (?, ?)').run(key, task.id);
      } else if (kind === 'token') {
        db.prepare('INSERT INTO tokens (id, hash, kind, doc) VALUES (?, ?, ?, ?)').run(doc.id, doc.hash, doc.kind, json);
      } else {
        const key = { target: 'name', agent: 'name', user: 'email' }[kind];
        db.prepare(`INSERT INTO ${kind}s (${key}, doc) VALUES (?, ?)`).run(doc[key], json);
      }
    }
  } finally {
    db.close();
  }
}

for (const kind of STORE_KINDS) {
  describe(`Store contract: records of other releases, ${kind.name}`, function () {
    let location: StoreLocation;
    let store: Store | undefined;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      // Made by this release, then closed: the tables and indexes are there for the old rows.
      await (await openStore(location.options)).close();
    });

    afterEach(async () => {
      await store?.close();
      store = undefined;
      location?.cleanup();
    });

    it('reads what earlier releases stored in the current shape, and writes it back in the current version', async () => {
      const { first, between, latest } = OLD_DOCS;
      await writeRaw(location, [
        ['task', first.task],
        ['task', between.task],
        ['task', latest.task],
        ['target', first.target],
        ['target', between.target],
        ['target', latest.target],
        ['agent', first.agent.replace('"a1"', '"a0"')],
        ['agent', latest.agent],
        ['token', first.token],
        ['token', between.token],
        ['token', latest.token],
        ['user', latest.user],
      ]);
      store = await openStore(location.options);
      const oldest = await store.getTask('01JFIRST000000000000000001');
      expect(oldest).to.deep.include({ review: [], killRequested: null, findings: {}, createdByGroups: [], published: 4, timeoutSeconds: 0 });
      expect(oldest?.events.map((e) => e.action)).to.deep.equal(['task.created', 'task.ready', 'task.running', 'task.success']);
      expect((await store.getTask('01JBETWEEN0000000000000001'))?.killRequested).to.deep.equal(new Date('2026-11-28T12:00:05.000Z'));
      expect((await store.listTasks({ audience: ['by:user:a@x'], limit: 10 })).map((t) => t.id)).to.deep.equal(['01JOLDTASK0000000000000001', '01JBETWEEN0000000000000001']);
      expect((await store.getTarget('t1'))?.distinctReviewers).to.equal(true);
      expect((await store.getTarget('t2'))?.runAs).to.equal('postgres');
      expect((await store.getTarget('db'))?.secretMapping).to.deep.equal({ time: 'T', created: 'C', PGPASS: 'pass' });
      expect(await store.getAgent('a0')).to.deep.include({ bootId: 'b1', tokenId: '', secretHashes: [] });
      expect(await store.getAgent('a1')).to.deep.include({ tokenId: 'tok-a', secretHashes: ['h2', 'h1'] });
      expect((await store.findTokenByHash('h1'))?.createdBy).to.equal('system');
      expect((await store.revokeToken('tok2', new Date(5)))?.revoked).to.deep.equal(new Date(5));
      expect((await store.getToken('tok-u'))?.lastUsed).to.deep.equal(new Date('2026-12-01T10:07:00.000Z'));
      expect((await store.getUser('a@x'))?.created).to.deep.equal(new Date('2026-12-01T10:00:00.000Z'));
      // Written back by this release: current version, same record.
      const updated = await store.updateTarget('t1', { message: 'now' }, new Date(9));
      const moved = await store.transition({ id: '01JBETWEEN0000000000000001', from: ['running'], to: 'killed', actor: 'agent:a1', reason: 'killed', time: new Date(10) });
      await store.close();
      store = await openStore(location.options);
      expect(await store.getTarget('t1')).to.deep.equal(updated);
      expect(await store.getTask('01JBETWEEN0000000000000001')).to.deep.equal(moved);
    });

    it('keeps a target\'s secret mapping whose variables are named like date fields', async () => {
      store = await openStore(location.options);
      const mapping = { time: 'T', created: 'C', expires: 'E', lastSeen: 'L' };
      await store.insertTarget(targetRecord('db', { secretMapping: mapping }));
      expect((await store.getTarget('db'))?.secretMapping).to.deep.equal(mapping);
      expect((await store.updateTarget('db', { message: 'm' }, new Date()))?.secretMapping).to.deep.equal(mapping);
      expect((await store.getTarget('db'))?.secretMapping).to.deep.equal(mapping);
    });

    it('refuses a record written by a newer release, naming it', async () => {
      const newer = (json: string) => JSON.stringify({ ...JSON.parse(json), v: 1000 });
      const task = readyTaskRecord({ id: '01JNEWER000000000000000001' });
      await writeRaw(location, [
        ['task', newer(JSON.stringify(task))],
        ['target', newer(JSON.stringify(targetRecord('later')))],
      ]);
      store = await openStore(location.options);
      const refusal = async (read: Promise<unknown>): Promise<unknown> => read.then(() => null, (err: unknown) => err);
      const error = await refusal(store.getTask(task.id));
      expect(error).to.be.instanceOf(RecordVersionError);
      expect((error as Error).message).to.contain(`stored task "${task.id}" was written by a newer Taskgate (record version 1000;`);
      expect(await refusal(store.listTasks({ limit: 10 }))).to.be.instanceOf(RecordVersionError);
      expect(await refusal(store.getTarget('later'))).to.be.instanceOf(RecordVersionError);
      // Nor is it overwritten as if it were one of ours.
      expect(await refusal(store.updateTarget('later', { message: 'x' }, new Date()))).to.be.instanceOf(RecordVersionError);
    });
  });
}
