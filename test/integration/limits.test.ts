/**
 * Per-caller limits (docs/limits.md "Per caller"): a user over the call
 * rate or the open-stream limit gets RESOURCE_EXHAUSTED saying when to
 * retry, and nobody else is slowed by it; connections that never speak
 * HTTP/2 are closed, a listener holds a bounded number of them, and an
 * address that keeps failing authentication stops costing store lookups.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import { Api } from '../../cli/client.js';
import { eventually } from '../helpers/eventually.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

describe('per-caller limits', function () {
  let h: Harness;

  beforeEach(async () => {
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!, { callsPerSecond: 5, callBurst: 10, streamsPerUser: 3 });
  });

  afterEach(async () => {
    await h?.close();
  });

  const whoAmI = (api: Api): Promise<unknown> => api.call(api.users, api.users.whoAmI, {});

  it('refuses a user past the call rate with RESOURCE_EXHAUSTED and when to retry, and lets others through', async () => {
    const greedy = await h.user('greedy@x', []);
    const other = await h.user('other@x', []);
    const results = await Promise.all(Array.from({ length: 30 }, () => whoAmI(greedy).then(() => null, (err: ServiceError) => err)));
    const refused = results.filter((r): r is ServiceError => r !== null);
    // The bucket holds 10 and refills at 5/s: of 30 calls at once, 10 or 11 pass.
    expect(30 - refused.length).to.be.within(10, 11);
    const first = refused[0]!;
    expect(first.code).to.equal(status.RESOURCE_EXHAUSTED);
    expect(first.details).to.match(/^rate limit: at most 5 calls per second per user \(bursts of 10\); retry in \d\.\d s$/);
    const pushback = Number(first.metadata.get('grpc-retry-pushback-ms')[0]);
    expect(pushback).to.be.within(1, 1000);
    // Another user has a bucket of their own.
    await whoAmI(other);
    // After the delay it names, the greedy user may call again.
    await new Promise((resolve) => setTimeout(resolve, pushback + 50));
    await whoAmI(greedy);
  });

  it('refuses a stream past the open-stream limit until one closes', async () => {
    // A task waiting for review: its watchers stay open.
    await h.createTarget('reviewed', 'a1', 'bash', { review: 2 /* ANY */ });
    const watcher = await h.user('watcher@x', []);
    const { task: waiting } = await watcher.call(watcher.tasks, watcher.tasks.createTask, { target: 'reviewed', script: 'true', message: '', type: '', timeoutSeconds: 0 });
    const open = () => {
      const call = watcher.tasks.watchTask({ id: waiting!.id }, watcher.metadata);
      const first = new Promise<ServiceError | null>((resolve) => {
        call.once('data', () => resolve(null));
        call.once('error', (err: ServiceError) => resolve(err));
      });
      call.on('error', () => undefined);
      return { call, first };
    };
    const streams = [open(), open(), open()];
    expect(await Promise.all(streams.map((s) => s.first))).to.deep.equal([null, null, null]);
    const fourth = open();
    const refused = await fourth.first;
    expect([refused?.code, refused?.details]).to.deep.equal([
      status.RESOURCE_EXHAUSTED,
      'too many open streams: at most 3 per user on this server; close some (log followers, watchers) first',
    ]);
    streams[0]!.call.cancel();
    let fifth: ReturnType<typeof open> | undefined;
    await eventually('a closed stream frees its place', async () => {
      fifth = open();
      return (await fifth.first) === null;
    });
    for (const s of [...streams, fifth!]) s.call.cancel();
  });

  it('frees the place of a follower cancelled in the middle of a large output (its stream ends, it does not hang)', async () => {
    await h.startAgent('a1');
    await h.createTarget('big', 'a1');
    const reader = await h.user('reader@x', []);
    const { task } = await reader.call(reader.tasks, reader.tasks.createTask, { target: 'big', script: 'head -c 20000000 /dev/zero | tr "\\0" x', message: '', type: '', timeoutSeconds: 0 });
    await h.finished(task!.id);
    // Three followers (the limit) each read one message of 20 MB and cancel.
    for (let i = 0; i < 3; i++) {
      const call = reader.tasks.getTaskLogs({ id: task!.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, reader.metadata);
      call.on('error', () => undefined);
      await new Promise((resolve) => call.once('data', resolve));
      call.cancel();
    }
    // Their places come back: three new streams are accepted.
    await eventually('the cancelled followers end on the server', async () => {
      const calls = [0, 1, 2].map(() => reader.tasks.getTaskLogs({ id: task!.id, offset: 0, follow: false, limitBytes: 0, tailBytes: 0 }, reader.metadata));
      const results = await Promise.all(
        calls.map(
          (call) =>
            new Promise<ServiceError | null>((resolve) => {
              call.once('data', () => resolve(null));
              call.once('error', (err: ServiceError) => resolve(err));
            }),
        ),
      );
      for (const call of calls) call.cancel();
      return results.every((r) => r === null);
    });
  });
});

describe('connection limits', function () {
  let h: Harness;

  afterEach(async () => {
    await h?.close();
  });

  /** A TCP connection to the server that says nothing; resolves when the server closes it. */
  function silent(port: number): { socket: Socket; closed: Promise<void> } {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume(); // read, or the server's close is never seen
    return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
  }

  it('closes connections that never send the HTTP/2 preface after the handshake timeout, and keeps those that do', async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!, { handshakeTimeoutMs: 300 });
    const quiet = Array.from({ length: 20 }, () => silent(h.server.port));
    // A client that speaks HTTP/2 (the harness's own) is not touched, however long it stays idle.
    await h.api.call(h.api.users, h.api.users.whoAmI, {});
    await Promise.all(quiet.map((c) => c.closed));
    await new Promise((resolve) => setTimeout(resolve, 600));
    await h.api.call(h.api.users, h.api.users.whoAmI, {});
  });

  it('holds at most --max-connections connections and accepts new ones once others close', async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!, { maxConnections: 3, handshakeTimeoutMs: 60_000 });
    // The harness's client holds one connection already.
    await h.api.call(h.api.users, h.api.users.whoAmI, {});
    const held = [silent(h.server.port), silent(h.server.port)];
    await Promise.all(held.map((c) => new Promise((resolve) => c.socket.once('connect', resolve))));
    const over = silent(h.server.port);
    await over.closed; // closed by the server at once: the listener is full
    for (const c of held) c.socket.destroy();
    await eventually('a freed place takes a new connection', async () => {
      const next = connect(h.server.port, '127.0.0.1');
      next.on('error', () => undefined);
      next.resume();
      const stayed = await new Promise<boolean>((resolve) => {
        next.once('close', () => resolve(false));
        setTimeout(() => resolve(true), 200);
      });
      next.destroy();
      return stayed;
    });
  });

  it('refuses unverified tokens from an address that keeps failing, without a store lookup, and keeps verified callers working', async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!, { authFailuresPerSecond: 2 });
    const member = await h.user('member@x', []);
    await member.call(member.users, member.users.whoAmI, {});
    const guesser = new Api({ server: h.address, token: 'tg_user_guess' });
    try {
      const codes: Array<number | undefined> = [];
      for (let i = 0; i < 14; i++) codes.push(await guesser.call(guesser.users, guesser.users.whoAmI, {}).then(() => undefined, (err: ServiceError) => err.code));
      // A bucket of 10 failures, refilled at 2/s: the first ten are looked up and fail, then the address is refused unchecked.
      expect(codes.slice(0, 10)).to.deep.equal(Array(10).fill(status.UNAUTHENTICATED));
      expect(codes.at(-1)).to.equal(status.RESOURCE_EXHAUSTED);
      const err = await guesser.call(guesser.users, guesser.users.whoAmI, {}).catch((e: ServiceError) => e);
      expect((err as ServiceError).details).to.match(/^too many failed authentications from 127\.0\.0\.1: at most 2 per second; retry in \d\.\d s with a valid token$/);
      // The member's token, verified before, still works from the same address,
      // also once this server's 5 s cache of verified callers has expired.
      await member.call(member.users, member.users.whoAmI, {});
      await new Promise((resolve) => setTimeout(resolve, 5500));
      await member.call(member.users, member.users.whoAmI, {});
    } finally {
      guesser.close();
    }
  });

  it('counts lookups in flight at once: a parallel burst of unknown tokens gets no more lookups than the bucket holds', async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!, { authFailuresPerSecond: 2 });
    const guessers = Array.from({ length: 200 }, (_, i) => new Api({ server: h.address, token: `tg_user_guess${i}` }));
    try {
      const codes = await Promise.all(guessers.map((g) => g.call(g.users, g.users.whoAmI, {}).then(() => 0, (err: ServiceError) => err.code)));
      const looked = codes.filter((c) => c === status.UNAUTHENTICATED).length;
      // The bucket holds 10 (and refills at 2/s while the burst is served).
      expect(looked, 'lookups that failed').to.be.within(10, 14);
      expect(codes.filter((c) => c === status.RESOURCE_EXHAUSTED).length).to.equal(200 - looked);
    } finally {
      for (const g of guessers) g.close();
    }
  });
});
