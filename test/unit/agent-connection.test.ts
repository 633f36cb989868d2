/**
 * The agent's stream to the server (agent/connection.ts) on fake streams and
 * fake timers: reconnect backoff, heartbeats, fatal refusals, boot ids and
 * session secrets. The generated client's `connect` is replaced for the
 * test, so no channel ever opens; every delay is checked to the millisecond
 * with the clock, not measured.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import FakeTimers, { type Clock } from '@sinonjs/fake-timers';
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { AgentServiceClient, type ConnectRequest, type ConnectResponse, type Hello, type Welcome } from '../../gen/taskgate/v1/agent.js';
import { AgentConnection, type ConnectionOptions, type ConnectionState } from '../../agent/connection.js';
import { silentLogger } from '../../shared/logger.js';

/** The client end of one Connect call. */
class FakeCall extends EventEmitter {
  readonly written: ConnectRequest[] = [];
  ended = false;
  cancelled = false;

  write(message: ConnectRequest): boolean {
    this.written.push(message);
    return true;
  }

  end(): void {
    this.ended = true;
  }

  cancel(): void {
    this.cancelled = true;
  }

  get hello(): Hello {
    const first = this.written[0]?.message;
    if (first?.$case !== 'hello') throw new Error('the call did not start with a Hello');
    return first.value;
  }

  get heartbeats(): number {
    return this.written.filter((m) => m.message?.$case === 'heartbeat').length;
  }

  /** The server welcomes the stream. */
  welcome(fields: Partial<Welcome> = {}): void {
    this.emit('data', { message: { $case: 'welcome', value: { heartbeatIntervalMs: 5000, maxOutputBytes: 0, sessionSecret: 'secret-1', ...fields } } } satisfies ConnectResponse);
  }

  /** The stream fails with `code`. */
  fail(code: status, details = ''): void {
    this.emit('error', Object.assign(new Error(details), { code, details, metadata: undefined }) as unknown as ServiceError);
  }
}

describe('agent connection (reconnects, heartbeats)', () => {
  const prototype = AgentServiceClient.prototype as unknown as { connect: (...args: unknown[]) => unknown };
  const realConnect = prototype.connect;
  let clock: Clock;
  let calls: FakeCall[];
  let states: ConnectionState[];
  let messages: ConnectResponse[];
  let fatal: ServiceError[];
  let connection: AgentConnection;

  beforeEach(() => {
    clock = FakeTimers.install({ now: Date.now(), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    calls = [];
    states = [];
    messages = [];
    fatal = [];
    prototype.connect = () => {
      const call = new FakeCall();
      calls.push(call);
      return call;
    };
  });

  afterEach(() => {
    connection?.stop();
    prototype.connect = realConnect;
    clock.uninstall();
  });

  function start(options: Partial<ConnectionOptions> = {}): AgentConnection {
    connection = new AgentConnection({
      server: '127.0.0.1:1',
      token: 'agent-token',
      name: 'a1',
      version: '1.0.0',
      // No jitter: delays of 1000, 2000, 4000, 8000, 8000, ... ms.
      backoff: { initialMs: 1000, multiplier: 2, maxMs: 8000, jitter: 0 },
      logger: silentLogger(),
      heldTasks: () => ['t-held'],
      onMessage: (m) => messages.push(m),
      onConnected: () => undefined,
      onState: (s) => states.push(s),
      onFatal: (err) => fatal.push(err),
      ...options,
    });
    connection.start();
    return connection;
  }

  /** Moves the clock by `ms` and returns how many streams were opened meanwhile. */
  function opensAfter(ms: number): number {
    const before = calls.length;
    clock.tick(ms);
    return calls.length - before;
  }

  it('reconnects after each lost stream with growing, capped delays, not a millisecond early', () => {
    start();
    expect([calls.length, connection.state]).to.deep.equal([1, 'connecting']);
    for (const delay of [1000, 2000, 4000, 8000, 8000]) {
      calls.at(-1)!.fail(status.UNAVAILABLE, 'connection refused');
      expect(connection.state).to.equal('backoff');
      expect(opensAfter(delay - 1), `before ${delay} ms`).to.equal(0);
      expect(opensAfter(1), `at ${delay} ms`).to.equal(1);
      expect(connection.state).to.equal('connecting');
    }
    expect(states.slice(0, 3)).to.deep.equal(['connecting', 'backoff', 'connecting']);
  });

  it('starts the delays over after a welcomed connection', () => {
    // random() just under 1: the fully jittered delay after the lost stream is the whole initialMs.
    start({ backoff: { initialMs: 1000, multiplier: 2, maxMs: 8000, jitter: 0, random: () => 0.9999999 } });
    calls.at(-1)!.fail(status.UNAVAILABLE);
    clock.tick(1000);
    calls.at(-1)!.fail(status.UNAVAILABLE);
    clock.tick(2000);
    calls.at(-1)!.welcome();
    expect(connection.state).to.equal('connected');
    // The server ends the stream (e.g. it restarts): back to the first delay, then 1000 ms again (not 4000).
    calls.at(-1)!.emit('end');
    expect(opensAfter(999)).to.equal(0);
    expect(opensAfter(1)).to.equal(1);
    calls.at(-1)!.fail(status.UNAVAILABLE);
    expect(opensAfter(999)).to.equal(0);
    expect(opensAfter(1)).to.equal(1);
  });

  it('waits a fully jittered delay in [0, initialMs] after a welcomed stream is lost, then the usual ones', () => {
    // random() = 0.3: 300 ms of the first second.
    start({ backoff: { initialMs: 1000, multiplier: 2, maxMs: 8000, jitter: 0, random: () => 0.3 } });
    calls.at(-1)!.fail(status.UNAVAILABLE);
    // Never welcomed: the first delay is not jittered (jitter 0).
    expect(opensAfter(999)).to.equal(0);
    expect(opensAfter(1)).to.equal(1);
    calls.at(-1)!.welcome();
    calls.at(-1)!.fail(status.UNAVAILABLE, 'server shutting down; reconnect');
    expect(opensAfter(299)).to.equal(0);
    expect(opensAfter(1)).to.equal(1);
    // That attempt fails too: the sequence goes on from initialMs.
    calls.at(-1)!.fail(status.UNAVAILABLE, 'connection refused');
    expect(opensAfter(999)).to.equal(0);
    expect(opensAfter(1)).to.equal(1);
    calls.at(-1)!.fail(status.UNAVAILABLE, 'connection refused');
    expect(opensAfter(1999)).to.equal(0);
    expect(opensAfter(1)).to.equal(1);
  });

  it('cancels a lost call and opens a new one, ignoring anything the old one still says', () => {
    start();
    const old = calls[0]!;
    old.welcome();
    old.fail(status.UNAVAILABLE);
    expect(old.cancelled).to.equal(true);
    clock.tick(1000);
    old.emit('data', { message: { $case: 'ack', value: { taskId: 'x', seq: 0, done: false } } });
    old.fail(status.UNAVAILABLE);
    expect(messages, 'messages of a lost call').to.deep.equal([]);
    expect([calls.length, connection.state]).to.deep.equal([2, 'connecting']);
  });

  it('sends a heartbeat at once after the Welcome, then every heartbeatIntervalMs, and none after the stream is lost', () => {
    start();
    const call = calls[0]!;
    call.welcome({ heartbeatIntervalMs: 5000 });
    expect(call.heartbeats, 'right after the Welcome').to.equal(1);
    clock.tick(4999);
    expect(call.heartbeats).to.equal(1);
    clock.tick(1);
    expect(call.heartbeats).to.equal(2);
    clock.tick(10_000);
    expect(call.heartbeats).to.equal(4);
    call.fail(status.UNAVAILABLE);
    clock.tick(60_000);
    expect(call.heartbeats, 'after the stream was lost').to.equal(4);
  });

  it('sends heartbeats at least 100 ms apart whatever the server asks', () => {
    start();
    calls[0]!.welcome({ heartbeatIntervalMs: 0 });
    clock.tick(99);
    expect(calls[0]!.heartbeats).to.equal(1);
    clock.tick(1);
    expect(calls[0]!.heartbeats).to.equal(2);
  });

  it('passes on messages after the Welcome only', () => {
    start();
    const call = calls[0]!;
    const ack: ConnectResponse = { message: { $case: 'ack', value: { taskId: 't', seq: 0, done: false } } };
    call.emit('data', ack);
    expect(connection.state).to.equal('connecting');
    call.welcome();
    call.emit('data', ack);
    expect(messages).to.deep.equal([ack]);
    expect(connection.send({ message: { $case: 'heartbeat', value: { tasks: [] } } })).to.equal(true);
  });

  for (const code of [status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.INVALID_ARGUMENT]) {
    it(`stops for good on ${status[code]}: no retry, no timer left`, () => {
      start();
      calls[0]!.fail(code, 'refused');
      expect(connection.state).to.equal('stopped');
      expect(fatal.map((e) => e.code)).to.deep.equal([code]);
      expect(clock.countTimers(), 'timers left').to.equal(0);
      expect(opensAfter(3_600_000)).to.equal(0);
    });
  }

  it('stop() during the backoff cancels the retry', () => {
    start();
    calls[0]!.fail(status.UNAVAILABLE);
    connection.stop();
    expect(clock.countTimers(), 'timers left').to.equal(0);
    expect(opensAfter(60_000)).to.equal(0);
    expect(connection.send({ message: { $case: 'heartbeat', value: { tasks: [] } } })).to.equal(false);
  });

  it('stop() while connected ends and cancels the call and stops the heartbeats', () => {
    start();
    const call = calls[0]!;
    call.welcome();
    connection.stop();
    expect([call.ended, call.cancelled, connection.state]).to.deep.equal([true, true, 'stopped']);
    expect(clock.countTimers(), 'timers left').to.equal(0);
  });

  it('uses a new boot id for every attempt until welcomed, then keeps it and presents the session secret', () => {
    start();
    calls[0]!.fail(status.UNAVAILABLE);
    clock.tick(1000);
    const [first, second] = [calls[0]!.hello, calls[1]!.hello];
    expect(second.bootId, 'a boot never welcomed holds nothing').to.not.equal(first.bootId);
    expect([first.resumeSecret, second.resumeSecret]).to.deep.equal(['', '']);
    expect([second.name, second.version, second.heldTaskIds]).to.deep.equal(['a1', '1.0.0', ['t-held']]);
    calls[1]!.welcome({ sessionSecret: 'secret-1' });
    calls[1]!.fail(status.UNAVAILABLE);
    clock.tick(1000);
    expect([calls[2]!.hello.bootId, calls[2]!.hello.resumeSecret]).to.deep.equal([second.bootId, 'secret-1']);
    expect(connection.bootId).to.equal(second.bootId);
    // A server that sends no secret leaves the last one in force.
    calls[2]!.welcome({ sessionSecret: '' });
    calls[2]!.fail(status.UNAVAILABLE);
    clock.tick(1000);
    expect(calls[3]!.hello.resumeSecret).to.equal('secret-1');
  });
});
