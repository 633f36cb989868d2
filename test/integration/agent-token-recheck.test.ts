/**
 * The open-stream check reads again only the agent tokens the store names
 * (server/live-streams.ts, `Store.tokensToRecheck`); the guarantee is the
 * one every token had when all were re-read: a revoked or expired agent
 * token ends its stream within one check interval on any replica. These
 * tests make the shortcuts a cheaper check could take fail: a revocation
 * written by another store instance (another replica, which tells this
 * server nothing) with that replica's clock far behind; an expiry that
 * passes while the stream is open; a revocation that lands while a pass is
 * reading; tokens stored before the query existed (an embedded data
 * directory made by an earlier release, and one such release still
 * writing the file).
 */
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import { join } from 'node:path';
import { hashToken } from '../../server/auth.js';
import { TaskgateServer } from '../../server/server.js';
import { openStore } from '../../server/store/open-store.js';
import { SCHEMA } from '../../server/store/sqlite-schema.js';
import type { Store, TokenRecord } from '../../server/store/store.js';
import { AgentError, TaskgateAgent } from '../../agent/agent.js';
import { Harness } from '../helpers/harness.js';
import { OLD_DOCS, withBsonDates } from '../helpers/records.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

/** The servers' check interval here, in ms. */
const RECHECK_MS = 200;
/** How long a stream may take to end after its token stopped standing for anyone: a few intervals, far more than the guarantee needs. */
const WITHIN_MS = 20 * RECHECK_MS;

/** How an agent's run ends: the error it failed with, or null when it stopped. */
function outcome(agent: TaskgateAgent): Promise<unknown> {
  return agent.run().then(
    () => null,
    (err: unknown) => err,
  );
}

/** Resolves with what `p` settles to, or rejects once `ms` have passed. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function token(id: string, fields: Partial<TokenRecord> = {}): TokenRecord {
  return { id, hash: `hash-${id}`, kind: 'agent', subject: `agent-${id}`, name: '', created: new Date(1_700_000_000_000), createdBy: 'system', revoked: null, ...fields };
}

for (const kind of STORE_KINDS) {
  describe(`agent streams end when their token does, on any replica: ${kind.name}`, function () {
    let location: StoreLocation;
    let h: Harness | undefined;
    /** Another replica's store: writes through it tell the server nothing. */
    let other: Store | undefined;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      h = await Harness.start(location, { streamRecheckMs: RECHECK_MS });
      other = await openStore(location.options);
      await h.createTarget('t1', 'a1', 'bash');
    });

    afterEach(async () => {
      await h?.close();
      await other?.close();
      h = other = undefined;
      location?.cleanup();
    });

    /** The stored record of an agent token secret. */
    async function recordOf(secret: string): Promise<TokenRecord> {
      return (await other!.findTokenByHash(hashToken(secret)))!;
    }

    it('ends the stream of a token revoked by another replica whose clock is an hour behind, and no other', async () => {
      const revokedSecret = await h!.agentToken('a1');
      const b = await replicaB(location);
      try {
        const revoked = b.agent('a1', revokedSecret);
        const kept = b.agent('a2', await h!.agentToken('a2'));
        await Promise.all([revoked.connected(), kept.connected()]);
        const [revokedRun, keptRun] = [outcome(revoked), outcome(kept)];
        let keptEnded = false;
        void keptRun.then(() => (keptEnded = true));
        // Passes have seen the token valid: a check that carried something from one pass to the next has had the chance.
        await b.reads(2);
        const record = await recordOf(revokedSecret);
        await other!.revokeToken(record.id, new Date(Date.now() - 3_600_000));
        const err = await within(revokedRun, WITHIN_MS, 'the revoked agent stopping');
        expect(err).to.be.instanceOf(AgentError);
        expect((err as AgentError).message).to.equal(`the server refused this agent: token ${record.id} was revoked`);
        await b.reads(3);
        expect(keptEnded, 'an agent whose token is valid was stopped').to.equal(false);
      } finally {
        await b.close();
      }
    });

    it('ends the stream of a token that expires while it is open', async () => {
      const created = await h!.api.call(h!.api.agents, h!.api.agents.createAgentToken, { name: 'a1', ttl: { seconds: 3, nanos: 0 } });
      const agent = await h!.startAgent('a1', { token: created.token });
      const record = await recordOf(created.token);
      const run = outcome(agent);
      const err = await within(run, 3000 + WITHIN_MS, 'the agent stopping after its token expired');
      expect(Date.now()).to.be.at.least(record.expires!.getTime());
      expect((err as AgentError).message).to.equal(`the server refused this agent: token ${record.id} expired at ${record.expires!.toISOString()}`);
    });

    it('ends the stream at a later pass when the token is revoked while a pass is reading', async () => {
      const secret = await h!.agentToken('a1');
      const record = await recordOf(secret);
      let revokedDuringPass = false;
      const b = await replicaB(location);
      try {
        const agent = b.agent('a1', secret);
        await agent.connected();
        const run = outcome(agent);
        await b.reads(2);
        // Right after a pass's token read returns, before the pass uses it.
        b.afterRead(async () => {
          if (revokedDuringPass) return;
          revokedDuringPass = true;
          await other!.revokeToken(record.id, new Date());
        });
        const err = await within(run, WITHIN_MS, 'the agent stopping');
        expect(revokedDuringPass, 'no pass read the tokens').to.equal(true);
        expect((err as AgentError).message).to.equal(`the server refused this agent: token ${record.id} was revoked`);
      } finally {
        await b.close();
      }
    });
  });

  describe(`Store.tokensToRecheck: ${kind.name}`, function () {
    let location: StoreLocation;
    let stores: Store[] = [];

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
    });

    afterEach(async () => {
      for (const store of stores) await store.close();
      stores = [];
      location?.cleanup();
    });

    async function open(): Promise<Store> {
      const store = await openStore(location.options);
      stores.push(store);
      return store;
    }

    it('names the missing, revoked, expired and parented tokens among those asked, and only those', async () => {
      const [a, b] = [await open(), await open()];
      const now = new Date();
      await a.insertToken(token('plain'));
      await a.insertToken(token('later', { expires: new Date(now.getTime() + 1) }));
      await a.insertToken(token('at-now', { expires: now }));
      await a.insertToken(token('past', { expires: new Date(now.getTime() - 1) }));
      await a.insertToken(token('revoked'));
      await a.insertToken(token('child', { parent: 'plain' }));
      await a.insertToken(token('not-asked', { revoked: now }));
      // Revoked through the other instance, with a clock behind this one's.
      await b.revokeToken('revoked', new Date(0));
      const asked = ['plain', 'later', 'at-now', 'past', 'revoked', 'child', 'gone'];
      expect((await a.tokensToRecheck(asked, now)).sort()).to.deep.equal(['at-now', 'child', 'gone', 'past', 'revoked']);
      expect(await a.tokensToRecheck(['plain', 'later'], now)).to.deep.equal([]);
      // Still named when the token is touched (lastUsed written) after it expired.
      await b.touchToken('past', new Date());
      expect(await a.tokensToRecheck(['past'], now)).to.deep.equal(['past']);
      expect(await a.tokensToRecheck([], now)).to.deep.equal([]);
    });

    it('names the tokens of earlier releases that no longer stand (no expiry, no revoked field, revoked)', async () => {
      await writeOldTokens(location, [OLD_DOCS.first.token, OLD_DOCS.between.token, OLD_DOCS.latest.token]);
      const store = await open();
      const now = new Date('2026-12-01T12:00:00.000Z');
      expect((await store.tokensToRecheck(['tok1', 'tok2', 'tok-u', 'gone'], now)).sort()).to.deep.equal(['gone', 'tok-u']);
      // An earlier release still writing the file (another replica not yet upgraded) revokes a token the way it did.
      await writeAsOldRelease(location, 'tok1', { ...(JSON.parse(OLD_DOCS.first.token) as object), revoked: '2026-12-01T11:00:00.000Z' });
      expect((await store.tokensToRecheck(['tok1', 'tok2'], now)).sort()).to.deep.equal(['tok1']);
    });

    it('names, at every pass, a token whose expiry an outside writer stored in a form it cannot compare (a string; a time without a zone)', async () => {
      const store = await open();
      await store.insertToken(token('str'));
      await store.insertToken(token('kept', { expires: new Date('2026-12-02T00:00:00.000Z') }));
      const now = new Date('2026-12-01T12:00:00.000Z');
      // Half an hour after `now` as UTC; a Date reads it as local time, which
      // east of UTC is already past: not comparable in the store, so named.
      if (location.options.mongodbUri) {
        await withMongo(location.options.mongodbUri, async (db) => {
          await db.collection<{ _id: string }>('tokens').updateOne({ _id: 'str' }, { $set: { expires: '2026-12-01T12:30:00' } });
        });
      } else {
        const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
        db.prepare("UPDATE tokens SET doc = json_set(doc, '$.expires', ?) WHERE id = ?").run('2026-12-01T12:30:00', 'str');
        db.close();
      }
      expect(await store.tokensToRecheck(['str', 'kept'], now)).to.deep.equal(['str']);
    });

    // MongoDB needs no triggers.
    if (kind.name === 'sqlite') it('makes its triggers again when a data directory lost them', async function () {
      await (await open()).insertToken(token('t1'));
      for (const store of stores) await store.close();
      stores = [];
      const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
      db.exec('DROP TRIGGER tokens_ends_insert; DROP TRIGGER tokens_ends_update;');
      db.close();
      const store = await open();
      await writeAsOldRelease(location, 't1', { ...(JSON.parse(JSON.stringify(await store.getToken('t1'))) as object), revoked: '2026-12-01T11:00:00.000Z', v: 1 });
      expect(await store.tokensToRecheck(['t1'], new Date())).to.deep.equal(['t1']);
    });
  });
}

/** Store methods the open-stream check reads tokens with. */
const TOKEN_READS = new Set(['tokensToRecheck', 'getTokens']);

/**
 * Replica B: another server on the same store, through a store instance of
 * its own wrapped to see the check's token reads (the harness's server is
 * replica A). Agents it starts are stopped by `close`.
 */
async function replicaB(location: StoreLocation): Promise<{
  agent(name: string, token: string): TaskgateAgent;
  /** Resolves after `n` more token reads by the check (one or two a pass). */
  reads(n: number): Promise<void>;
  /** Runs `hook` after each token read returns, before the pass sees the result. */
  afterRead(hook: () => Promise<void>): void;
  close(): Promise<void>;
}> {
  const real = await openStore(location.options);
  let hook: (() => Promise<void>) | null = null;
  let reads = 0;
  const waiters: Array<{ at: number; resolve: () => void }> = [];
  const store = new Proxy(real, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof prop !== 'string' || !TOKEN_READS.has(prop)) return method.bind(target);
      return async (...args: unknown[]) => {
        const result = await method.apply(target, args);
        if (hook) await hook();
        reads++;
        for (const w of waiters.filter((w) => reads >= w.at)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
        return result;
      };
    },
  });
  const server = await TaskgateServer.start({ ...location.options, listen: '127.0.0.1:0', store, streamRecheckMs: RECHECK_MS });
  const agents: TaskgateAgent[] = [];
  return {
    agent(name, token) {
      const agent = new TaskgateAgent({ server: `127.0.0.1:${server.port}`, token, name, backoff: { initialMs: 50, maxMs: 500 } });
      agents.push(agent);
      agent.start();
      return agent;
    },
    reads: (n) => new Promise((resolve) => waiters.push({ at: reads + n, resolve })),
    afterRead: (h) => void (hook = h),
    async close() {
      for (const agent of agents) await agent.stop().catch(() => undefined);
      await server.stop();
      await real.close();
    },
  };
}

/**
 * Writes token documents as releases before `tokensToRecheck` stored them:
 * for the embedded store, a data directory made by such a release (its
 * tables, no `ends_ms` column); for MongoDB, the documents as they were.
 */
async function writeOldTokens(location: StoreLocation, docs: readonly string[]): Promise<void> {
  if (location.options.mongodbUri) {
    await withMongo(location.options.mongodbUri, async (db) => {
      for (const json of docs) {
        const doc = withBsonDates(json);
        await db.collection<{ _id: string }>('tokens').insertOne({ _id: doc.id as string, ...doc });
      }
    });
    return;
  }
  const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
  try {
    db.exec(SCHEMA);
    for (const json of docs) {
      const doc = JSON.parse(json) as Record<string, string>;
      db.prepare('INSERT INTO tokens (id, hash, kind, doc) VALUES (?, ?, ?, ?)').run(doc.id, doc.hash, doc.kind, json);
    }
  } finally {
    db.close();
  }
}

/** Replaces a token's document the way an earlier release's revokeToken did (the whole document; in SQLite, `doc` only). */
async function writeAsOldRelease(location: StoreLocation, id: string, doc: object): Promise<void> {
  const json = JSON.stringify(doc);
  if (location.options.mongodbUri) {
    await withMongo(location.options.mongodbUri, async (db) => {
      await db.collection<{ _id: string }>('tokens').replaceOne({ _id: id }, { _id: id, ...withBsonDates(json) });
    });
    return;
  }
  const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
  try {
    db.prepare('UPDATE tokens SET doc = ? WHERE id = ?').run(json, id);
  } finally {
    db.close();
  }
}

async function withMongo(uri: string, use: (db: ReturnType<MongoClient['db']>) => Promise<void>): Promise<void> {
  const client = await MongoClient.connect(uri);
  try {
    await use(client.db(new URL(uri).pathname.slice(1) || 'taskgate'));
  } finally {
    await client.close();
  }
}
