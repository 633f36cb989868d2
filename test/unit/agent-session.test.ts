/**
 * The server's side of an agent stream (server/agent-session.ts) on a fake
 * stream, an in-memory store and fake timers: the Hello timeout, and how an
 * agent's TaskExit is classified into success, failure or killed.
 */
import type { ServerDuplexStream, ServiceError } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import FakeTimers, { type Clock } from '@sinonjs/fake-timers';
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import type { ConnectRequest, ConnectResponse, TaskExit } from '../../gen/taskgate/v1/agent.js';
import { silentLogger } from '../../shared/logger.js';
import { AgentSession, type SessionDeps, type SessionOptions } from '../../server/agent-session.js';
import { Dispatcher } from '../../server/dispatcher.js';
import type { Metrics } from '../../server/metrics.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import type { TaskRecord } from '../../server/store/store.js';
import { Authenticator } from '../../server/auth.js';
import { LiveStreams } from '../../server/live-streams.js';
import { TaskHub } from '../../server/task-hub.js';
import { TaskMachine } from '../../server/task-machine.js';
import { readyTaskRecord } from '../helpers/records.js';
import { PRESENCE_BATCH_MS, PresenceWriter } from '../../server/presence.js';

/** The server end of an agent stream: records what the session writes and how it ends. */
class FakeAgentStream extends EventEmitter {
  readonly written: ConnectResponse[] = [];
  /** The status the session ended the stream with, if it did. */
  ended: Partial<ServiceError> | 'OK' | null = null;
  #paused = false;

  constructor() {
    super();
    // What AgentSession emits to end the stream with a status (grpc-js sends it as the trailer).
    this.on('error', (err: Partial<ServiceError>) => (this.ended ??= err));
  }

  write(message: ConnectResponse): boolean {
    this.written.push(message);
    return true;
  }

  end(): void {
    this.ended ??= 'OK';
  }

  pause(): this {
    this.#paused = true;
    return this;
  }

  resume(): this {
    this.#paused = false;
    return this;
  }

  isPaused(): boolean {
    return this.#paused;
  }

  /** The agent sends a message. */
  send(message: ConnectRequest['message']): void {
    this.emit('data', { message });
  }

  /** Messages of one kind the session wrote. */
  sent<K extends NonNullable<ConnectResponse['message']>['$case']>(kind: K): Extract<NonNullable<ConnectResponse['message']>, { $case: K }>['value'][] {
    return this.written.flatMap((m) => (m.message?.$case === kind ? [m.message.value as never] : []));
  }
}

const OPTIONS: SessionOptions = {
  heartbeatIntervalMs: 10_000,
  maxTasksPerAgent: 30,
  helloTimeoutMs: 10_000,
  killGraceMs: 5000,
  maxOutputBytes: 0,
  lastSeenEveryMs: 5000,
};

const METRICS = { agentStream: () => undefined, started: () => undefined, output: () => undefined } as unknown as Metrics;

function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
  return readyTaskRecord({ published: 2, ...overrides });
}

describe('agent session (server side of the agent stream)', () => {
  let clock: Clock;
  let store: SqliteStore;
  let deps: SessionDeps;

  beforeEach(async () => {
    clock = FakeTimers.install({ now: Date.now(), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    store = new SqliteStore(':memory:');
    await store.init();
    const logger = silentLogger();
    const hub = new TaskHub();
    deps = {
      store,
      machine: new TaskMachine(store, hub, logger, () => undefined),
      hub,
      dispatcher: new Dispatcher(logger),
      logger,
      options: OPTIONS,
      secretBox: null,
      metrics: METRICS,
      requireAgentCertificate: false,
      live: new LiveStreams(new Authenticator(store), logger, { everyMs: 60_000 }),
      presence: new PresenceWriter(store, logger),
    };
  });

  afterEach(async () => {
    clock.uninstall();
    await store.close();
  });

  function open(): { stream: FakeAgentStream; session: AgentSession } {
    const stream = new FakeAgentStream();
    const session = new AgentSession(stream as unknown as ServerDuplexStream<ConnectRequest, ConnectResponse>, { kind: 'agent', name: 'a1', tokenId: 'tok1' }, deps);
    return { stream, session };
  }

  /** Lets the session's promise chains run (store calls resolve as microtasks) without moving the clock. */
  async function settle(): Promise<void> {
    await clock.tickAsync(0);
  }

  describe('Hello timeout', () => {
    it('ends a stream that sends no Hello within helloTimeoutMs with INVALID_ARGUMENT, not before', async () => {
      const { stream, session } = open();
      await clock.tickAsync(OPTIONS.helloTimeoutMs - 1);
      expect([session.state, stream.ended]).to.deep.equal(['handshaking', null]);
      await clock.tickAsync(1);
      expect(session.state).to.equal('closed');
      expect(stream.ended).to.deep.include({ code: status.INVALID_ARGUMENT, details: 'no Hello within the handshake timeout' });
      expect(clock.countTimers(), 'timers left').to.equal(0);
    });

    it('keeps a stream whose Hello came in time, long past the timeout', async () => {
      const { stream, session } = open();
      await clock.tickAsync(OPTIONS.helloTimeoutMs - 1);
      stream.send({ $case: 'hello', value: { name: 'a1', version: '1', bootId: 'boot1', heldTaskIds: [], resumeSecret: '' } });
      await settle();
      expect(stream.sent('welcome')).to.have.length(1);
      await clock.tickAsync(10 * OPTIONS.helloTimeoutMs);
      expect([session.state, stream.ended]).to.deep.equal(['active', null]);
    });

    it('stops the timer when the stream goes away first', async () => {
      const { stream, session } = open();
      stream.emit('cancelled');
      expect(session.state).to.equal('closed');
      expect(clock.countTimers(), 'timers left').to.equal(0);
      await clock.tickAsync(OPTIONS.helloTimeoutMs);
      expect(stream.ended).to.equal(null);
    });

    it('ends its side with OK when the agent half-closes, so the call does not hang', async () => {
      const { stream, session } = open();
      stream.send({ $case: 'hello', value: { name: 'a1', version: '1', bootId: 'boot1', heldTaskIds: [], resumeSecret: '' } });
      await settle();
      stream.emit('end');
      expect([session.state, stream.ended]).to.deep.equal(['closed', 'OK']);
    });
  });

  describe('lastSeen', () => {
    it('is written at Hello, then at the first heartbeat lastSeenEveryMs later, however often idle heartbeats come, gathered with other agents\' for up to PRESENCE_BATCH_MS', async () => {
      await store.putAgent({ name: 'a1', version: '', bootId: '', lastSeen: null, connected: false, tokenId: '', secretHashes: [] });
      const writes: Date[] = [];
      const updateMany = store.updateAgentsPresence.bind(store);
      store.updateAgentsPresence = async (updates) => {
        for (const u of updates) writes.push(u.presence.lastSeen!);
        return updateMany(updates);
      };
      const { stream } = open();
      stream.send({ $case: 'hello', value: { name: 'a1', version: '1', bootId: 'boot1', heldTaskIds: [], resumeSecret: '' } });
      await settle();
      const hello = (await store.getAgent('a1'))!.lastSeen!.getTime();
      // Heartbeats every 100 ms, with nothing to report: none writes before lastSeenEveryMs has passed.
      for (let t = 100; t < OPTIONS.lastSeenEveryMs; t += 100) {
        await clock.tickAsync(100);
        stream.send({ $case: 'heartbeat', value: { tasks: [] } });
        await settle();
      }
      await clock.tickAsync(50);
      expect(writes).to.have.length(0);
      await clock.tickAsync(50);
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await settle();
      expect(writes, 'waits for the batch').to.have.length(0);
      await clock.tickAsync(PRESENCE_BATCH_MS);
      expect(writes.map((d) => d.getTime() - hello)).to.deep.equal([OPTIONS.lastSeenEveryMs]);
      expect((await store.getAgent('a1'))!).to.deep.include({ lastSeen: writes[0], connected: true });
      // And again one lastSeenEveryMs after that one.
      await clock.tickAsync(OPTIONS.lastSeenEveryMs - 1 - PRESENCE_BATCH_MS);
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await settle();
      expect(writes).to.have.length(1);
      await clock.tickAsync(1);
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await settle();
      await clock.tickAsync(PRESENCE_BATCH_MS);
      expect(writes.map((d) => d.getTime() - hello)).to.deep.equal([OPTIONS.lastSeenEveryMs, 2 * OPTIONS.lastSeenEveryMs]);
    });

    it('is written disconnected when the stream ends, and a refresh still waiting for its batch is dropped, never written after it', async () => {
      await store.putAgent({ name: 'a1', version: '', bootId: '', lastSeen: null, connected: false, tokenId: '', secretHashes: [] });
      const { stream } = open();
      stream.send({ $case: 'hello', value: { name: 'a1', version: '1', bootId: 'boot1', heldTaskIds: [], resumeSecret: '' } });
      await settle();
      await clock.tickAsync(OPTIONS.lastSeenEveryMs);
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await settle();
      stream.emit('cancelled');
      await settle();
      await clock.tickAsync(PRESENCE_BATCH_MS * 2);
      await settle();
      expect((await store.getAgent('a1'))!.connected).to.equal(false);
    });
  });

  describe('exit classification', () => {
    /** A welcomed session holding one running task; returns the task's id. */
    async function running(overrides: Partial<TaskRecord> = {}): Promise<{ stream: FakeAgentStream; id: string }> {
      const t = task(overrides);
      await store.insertTask(t);
      const { stream } = open();
      stream.send({ $case: 'hello', value: { name: 'a1', version: '1', bootId: 'boot1', heldTaskIds: [], resumeSecret: '' } });
      // Tasks are pushed once the agent speaks after the Welcome.
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await settle();
      expect(stream.sent('run').map((r) => r.taskId)).to.deep.equal([t.id]);
      return { stream, id: t.id };
    }

    function exit(id: string, fields: Partial<TaskExit>): TaskExit {
      return { taskId: id, exitCode: undefined, signal: '', error: '', chunks: 0, totalBytes: 0, timedOut: false, droppedBytes: 0, findings: {}, ...fields };
    }

    const cases: Array<{ name: string; killRequested?: boolean; timeoutSeconds?: number; report: Partial<TaskExit>; status: string; reason: string }> = [
      { name: 'exit status 0', report: { exitCode: 0 }, status: 'success', reason: '' },
      { name: 'a non-zero exit status', report: { exitCode: 3 }, status: 'failure', reason: 'exited with status 3' },
      { name: 'no status at all', report: {}, status: 'failure', reason: 'exited with status unknown' },
      { name: 'a signal nobody asked for', report: { signal: 'SIGKILL' }, status: 'failure', reason: 'killed by signal SIGKILL' },
      { name: 'a spawn error', report: { error: 'spawn bash ENOENT' }, status: 'failure', reason: 'could not start: spawn bash ENOENT' },
      { name: 'its timeout', timeoutSeconds: 5, report: { signal: 'SIGTERM', timedOut: true }, status: 'failure', reason: 'timeout: still running after 5 s; killed (SIGTERM)' },
      { name: 'a requested kill', killRequested: true, report: { signal: 'SIGTERM' }, status: 'killed', reason: 'killed on request (SIGTERM)' },
      { name: 'a kill before it started', killRequested: true, report: { error: 'killed before it started' }, status: 'killed', reason: 'killed on request before it started' },
      { name: 'a kill that lost the race with exit 0', killRequested: true, report: { exitCode: 0 }, status: 'success', reason: '' },
      { name: 'a kill that lost the race with exit 1', killRequested: true, report: { exitCode: 1 }, status: 'failure', reason: 'exited with status 1' },
      {
        name: 'output the server does not hold',
        report: { exitCode: 0, chunks: 2, totalBytes: 10 },
        status: 'failure',
        reason: 'output incomplete: agent sent 2 chunks (10 bytes), server holds 0 (0 bytes)',
      },
    ];

    for (const c of cases) {
      it(`ends a task reported with ${c.name} as ${c.status}`, async () => {
        const { stream, id } = await running({ timeoutSeconds: c.timeoutSeconds ?? 0 });
        if (c.killRequested) await store.patchTask(id, 'running', { killRequested: new Date() });
        stream.send({ $case: 'exit', value: exit(id, c.report) });
        await settle();
        const after = await store.getTask(id);
        expect([after?.status, after?.failureReason]).to.deep.equal([c.status, c.reason]);
        expect(after?.events.at(-1)).to.deep.include({ from: 'running', to: c.status, actor: 'agent:a1' });
        if (c.killRequested && c.status !== 'killed') expect(after?.events.at(-1)?.reason).to.match(/a kill was requested, but the process exited with a status of its own/);
        expect(stream.sent('ack').at(-1)).to.deep.equal({ taskId: id, seq: -1, done: true });
      });
    }

    it("claims a full agent's next ready task in its exit's store step, oldest first, never past the limit", async () => {
      deps = { ...deps, options: { ...OPTIONS, maxTasksPerAgent: 2 } };
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const t = task();
        ids.push(t.id);
        await store.insertTask(t);
      }
      const calls: string[] = [];
      for (const op of ['claimReady', 'finishAndClaimNext', 'updateTaskWithOutput'] as const) {
        const real = (store[op] as (...args: unknown[]) => Promise<unknown>).bind(store);
        (store as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
          calls.push(op);
          return real(...args);
        };
      }
      const { stream } = open();
      stream.send({ $case: 'hello', value: { name: 'a1', version: '1', bootId: 'boot1', heldTaskIds: [], resumeSecret: '' } });
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await settle();
      expect(stream.sent('run').map((r) => r.taskId)).to.deep.equal(ids.slice(0, 2));
      expect(calls).to.deep.equal(['claimReady']);
      const running = async () => (await store.listTasks({ statuses: ['running'], limit: 10 })).map((t) => t.id).sort();
      for (const [i, next] of [[0, 2], [1, 3]] as const) {
        calls.length = 0;
        stream.send({ $case: 'exit', value: exit(ids[i]!, { exitCode: 0 }) });
        await settle();
        expect(calls, `exit of task ${i}`).to.deep.equal(['finishAndClaimNext']);
        expect(stream.sent('run').at(-1)?.taskId).to.equal(ids[next]);
        expect(await running()).to.deep.equal(ids.slice(i + 1, next + 1).sort());
      }
      // Full, none left ready: the exit's step claims nothing, and the session stops looking.
      calls.length = 0;
      stream.send({ $case: 'exit', value: exit(ids[2]!, { exitCode: 0 }) });
      await settle();
      expect(calls).to.deep.equal(['finishAndClaimNext']);
      // Not full: a plain exit, and no claim either (none is ready).
      calls.length = 0;
      stream.send({ $case: 'exit', value: exit(ids[3]!, { exitCode: 0 }) });
      await settle();
      expect(calls).to.deep.equal(['updateTaskWithOutput']);
      expect(stream.sent('run')).to.have.length(4);
      for (const id of ids) expect((await store.getTask(id))?.status).to.equal('success');
    });

    it('ignores the exit of a task this session does not hold, and tells the agent to forget it', async () => {
      const { stream } = await running();
      const other = task({ status: 'running', bootId: 'someone-else' });
      await store.insertTask(other);
      stream.send({ $case: 'exit', value: exit(other.id, { exitCode: 0 }) });
      await settle();
      expect((await store.getTask(other.id))?.status).to.equal('running');
      expect(stream.sent('ack').at(-1)).to.deep.equal({ taskId: other.id, seq: -1, done: true });
    });
  });
});
