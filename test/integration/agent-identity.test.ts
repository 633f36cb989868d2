/**
 * Issue 13: who may speak for an agent on its stream. A rogue holding a
 * stolen agent token and every identifier users can see (the agent's name,
 * task ids, whatever ListAgents and GetTask return) speaks the protocol by
 * hand and must not replace the live stream, resume its boot, or put output
 * or an exit on any task; the real agent's tasks end with their real output.
 * A legitimate reconnect still resumes. Also: a target's run_as and the
 * secret names the server refuses. Runs against both stores.
 */
import { credentials, Metadata, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentServiceClient, ConnectRequest, type ConnectResponse, type Hello, type Welcome } from '../../gen/taskgate/v1/agent.js';
import { Target } from '../../gen/taskgate/v1/target.js';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import type { TaskgateAgent } from '../../agent/agent.js';
import { randomId } from '../../shared/ids.js';
import { untilOutput } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

/** How a stream ended: the status name and its details. */
interface Ending {
  code: string;
  details: string;
}

/** One agent stream spoken by hand, as a rogue (or a test) would. */
class RawStream {
  readonly received: ConnectResponse[] = [];
  readonly ended: Promise<Ending>;
  readonly #call: ClientDuplexStream<ConnectRequest, ConnectResponse>;
  readonly #waiters: Array<{ match: (m: ConnectResponse) => boolean; resolve: (m: ConnectResponse) => void }> = [];
  #seen = 0;

  constructor(client: AgentServiceClient, token: string) {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    this.#call = client.connect(metadata);
    this.ended = new Promise((resolve) => {
      this.#call.on('error', (err: ServiceError) => resolve({ code: status[err.code], details: err.details }));
      this.#call.on('status', (s: { code: status; details: string }) => resolve({ code: status[s.code], details: s.details }));
    });
    this.#call.on('data', (m: ConnectResponse) => {
      this.received.push(m);
      for (const w of [...this.#waiters]) {
        if (w.match(m)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(m);
          return;
        }
      }
    });
  }

  send(message: ConnectRequest['message']): void {
    this.#call.write(ConnectRequest.fromPartial({ message }));
  }

  hello(hello: Partial<Hello>): void {
    this.send({ $case: 'hello', value: { name: '', version: 'rogue', bootId: '', heldTaskIds: [], resumeSecret: '', ...hello } });
  }

  /** The next message (not yet returned by next) that `match` accepts; rejects if the stream ends first. */
  next(match: (m: ConnectResponse) => boolean): Promise<ConnectResponse> {
    for (let i = this.#seen; i < this.received.length; i++) {
      const m = this.received[i]!;
      if (match(m)) {
        this.#seen = i + 1;
        return Promise.resolve(m);
      }
    }
    return Promise.race([
      new Promise<ConnectResponse>((resolve) =>
        this.#waiters.push({
          match,
          resolve: (m) => {
            this.#seen = this.received.length;
            resolve(m);
          },
        }),
      ),
      this.ended.then((e): never => {
        throw new Error(`stream ended (${e.code}: ${e.details}) before the awaited message`);
      }),
    ]);
  }

  async welcome(): Promise<Welcome> {
    const m = await this.next((r) => r.message?.$case === 'welcome');
    if (m.message?.$case !== 'welcome') throw new Error('not a welcome');
    return m.message.value;
  }

  close(): void {
    this.#call.cancel();
  }
}

const isAck = (taskId: string) => (m: ConnectResponse) => m.message?.$case === 'ack' && m.message.value.taskId === taskId;

for (const kind of STORE_KINDS) {
  describe(`agent identity (issue 13): ${kind.name}`, function () {
    let h: Harness;
    let dir: string;
    let client: AgentServiceClient;
    const streams: RawStream[] = [];
    const closers: Array<() => Promise<unknown>> = [];

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location, { secretsKey: randomBytes(32) });
      dir = mkdtempSync(join(tmpdir(), 'taskgate-identity-'));
      chmodSync(dir, 0o711); // tasks (users of their own) look for their gate files here
      client = new AgentServiceClient(h.address, credentials.createInsecure());
    });

    afterEach(async () => {
      for (const s of streams.splice(0)) s.close();
      for (const close of closers.splice(0).reverse()) await close();
      client?.close();
      await h?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function raw(token: string): RawStream {
      const s = new RawStream(client, token);
      streams.push(s);
      return s;
    }

    /** A script that prints "begin", waits for `name` to exist, then prints "real-end". */
    function gated(name: string): { script: string; release: () => void } {
      const file = join(dir, name);
      return {
        script: `echo begin; while [ ! -e ${file} ]; do sleep 0.05; done; echo real-end`,
        release: () => writeFileSync(file, ''),
      };
    }

    /** Opens a session for `name` with a new boot id, retrying while the last stream of that name is still live here. */
    async function welcomed(token: string, name: string): Promise<{ stream: RawStream; bootId: string; welcome: Welcome }> {
      for (let attempt = 0; attempt < 200; attempt++) {
        const stream = raw(token);
        const bootId = randomId();
        stream.hello({ name, bootId });
        const first = await Promise.race([stream.welcome(), stream.ended]);
        if ('code' in first) {
          expect(first.code, first.details).to.equal('ALREADY_EXISTS');
          continue;
        }
        return { stream, bootId, welcome: first };
      }
      throw new Error(`agent ${name} was never welcomed`);
    }

    function stateLog(agent: TaskgateAgent): string[] {
      const states: string[] = [];
      agent.on('state', (s: string) => states.push(s));
      return states;
    }

    it('a rogue with the agent token and everything users see cannot replace or resume the live stream', async () => {
      await h.createTarget('t1', 'a1');
      const token = await h.agentToken('a1');
      const real = await h.startAgent('a1', { token });
      const gate = gated('release');
      const task = await h.createTask('t1', gate.script);
      await untilOutput(h.api, task.id, 'begin');
      const states = stateLog(real);

      // Everything a user sees of the agent and its task.
      const listed = (await h.api.call(h.api.agents, h.api.agents.listAgents, {})).agents;
      expect(listed.map((a) => [a.name, a.connected, a.bootId])).to.deep.equal([['a1', true, '']]);
      const seen = await h.getTask(task.id);
      expect([seen.agent, seen.status]).to.deep.equal(['a1', TaskStatus.TASK_STATUS_RUNNING]);
      // What the rogue could only have from the database: the real boot id and the hashes.
      const record = (await h.store.getAgent('a1'))!;
      expect(record.bootId).to.not.equal('');
      expect(record.secretHashes).to.have.length(1);
      const chunks = (await h.store.chunkStats(task.id)).chunks;

      const attempts: Array<{ what: string; hello: Partial<Hello>; code: string }> = [
        { what: 'a new boot id', hello: { bootId: randomId() }, code: 'ALREADY_EXISTS' },
        { what: 'the task id as boot id', hello: { bootId: seen.id }, code: 'ALREADY_EXISTS' },
        { what: 'the boot id ListAgents shows', hello: { bootId: listed[0]!.bootId }, code: 'INVALID_ARGUMENT' },
        { what: 'the real boot id, no secret', hello: { bootId: record.bootId }, code: 'PERMISSION_DENIED' },
        { what: 'the real boot id, a guessed secret', hello: { bootId: record.bootId, resumeSecret: randomBytes(32).toString('base64url') }, code: 'PERMISSION_DENIED' },
        { what: 'the real boot id, the stored hash as secret', hello: { bootId: record.bootId, resumeSecret: record.secretHashes[0]! }, code: 'PERMISSION_DENIED' },
      ];
      for (const attempt of attempts) {
        const rogue = raw(token);
        rogue.hello({ name: 'a1', heldTaskIds: [task.id], ...attempt.hello });
        // Pipelined behind the Hello, before any answer: a start, output and a successful exit.
        rogue.send({ $case: 'started', value: { taskId: task.id, time: new Date(), pid: 1 } });
        rogue.send({ $case: 'output', value: { taskId: task.id, seq: chunks, offset: 6, data: Buffer.from('FAKE\r\n') } });
        rogue.send({ $case: 'exit', value: { taskId: task.id, exitCode: 0, signal: '', error: '', chunks: chunks + 1, totalBytes: 12, timedOut: false, droppedBytes: 0, findings: {} } });
        const ending = await rogue.ended;
        expect([attempt.what, ending.code], ending.details).to.deep.equal([attempt.what, attempt.code]);
        if (attempt.code === 'PERMISSION_DENIED') expect(ending.details).to.match(/^this boot id belongs to another session; /);
        expect(rogue.received, attempt.what).to.deep.equal([]);
      }

      // The real stream was never touched, and its session is unchanged.
      expect(states).to.deep.equal([]);
      expect(h.server.connectedAgents()).to.deep.equal(['a1']);
      expect((await h.store.getAgent('a1'))?.secretHashes).to.deep.equal(record.secretHashes);
      gate.release();
      const { task: done, output } = await h.finished(task.id);
      expect([done.status, output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'begin\r\nreal-end\r\n']);
      expect(done.events.filter((e) => e.to === TaskStatus.TASK_STATUS_RUNNING)).to.have.length(1);
    });

    it('a welcomed rogue session cannot put a start, output or an exit on tasks it was not handed', async () => {
      await h.createTarget('t1', 'a1');
      await h.createTarget('t2', 'a2');
      const token = await h.agentToken('a1');
      const a1 = await h.startAgent('a1', { token });
      const finished = await h.finished((await h.createTask('t1', 'echo done-1')).id);
      expect(finished.output.toString()).to.equal('done-1\r\n');
      await a1.stop();
      await h.startAgent('a2');
      const gate = gated('release-a2');
      const running = await h.createTask('t2', gate.script);
      await untilOutput(h.api, running.id, 'begin');

      // With the real a1 gone, the token alone opens a session (a new boot): what can it do?
      const { stream: rogue, welcome } = await welcomed(token, 'a1');
      expect(welcome.sessionSecret).to.match(/^[A-Za-z0-9_-]{43}$/);
      rogue.send({ $case: 'heartbeat', value: { tasks: [] } });
      const victims = [finished.task.id, running.id, randomId()];
      const before = await Promise.all(victims.map((id) => h.store.chunkStats(id)));
      for (const [i, id] of victims.entries()) {
        const { chunks, bytes } = before[i]!;
        rogue.send({ $case: 'started', value: { taskId: id, time: new Date(), pid: 1 } });
        rogue.send({ $case: 'output', value: { taskId: id, seq: chunks, offset: bytes, data: Buffer.from('FAKE\r\n') } });
        rogue.send({ $case: 'exit', value: { taskId: id, exitCode: 0, signal: '', error: '', chunks: chunks + 1, totalBytes: bytes + 6, timedOut: false, droppedBytes: 0, findings: {} } });
        // Each is answered "done, forget it", and nothing else happens.
        for (let n = 0; n < 3; n++) {
          const ack = await rogue.next(isAck(id));
          expect(ack.message?.$case === 'ack' && ack.message.value.done, `ack ${n} for ${id}`).to.equal(true);
        }
      }
      expect(await Promise.all(victims.map((id) => h.store.chunkStats(id)))).to.deep.equal(before);
      const after = await h.getTask(finished.task.id);
      expect([after.status, after.outputBytes, after.events.length]).to.deep.equal([
        finished.task.status,
        finished.task.outputBytes,
        finished.task.events.length,
      ]);
      expect((await h.logs(finished.task.id, { follow: false })).output.toString()).to.equal('done-1\r\n');
      expect((await h.getTask(running.id)).status).to.equal(TaskStatus.TASK_STATUS_RUNNING);

      gate.release();
      const done = await h.finished(running.id);
      expect([done.task.status, done.task.agent, done.output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'a2', 'begin\r\nreal-end\r\n']);
    });

    it('stores no output of a task given up while its agent still runs it', async () => {
      await h.createTarget('t1', 'a1');
      const agent = await h.startAgent('a1');
      const gate = gated('release');
      const task = await h.createTask('t1', gate.script);
      await untilOutput(h.api, task.id, 'begin');
      // As another replica does when it gives the task up ("agent lost").
      const failed = await h.store.transition({
        id: task.id,
        from: ['running'],
        to: 'failure',
        patch: { finished: new Date(), failureReason: 'given up elsewhere' },
        actor: 'system',
        reason: 'test',
        time: new Date(),
      });
      expect(failed?.status).to.equal('failure');
      const idle = new Promise<void>((resolve) => agent.once('idle', resolve));
      gate.release();
      // The server tells the agent to forget the task; its late output is not kept.
      await idle;
      const chunks = await h.store.readChunks(task.id, { afterSeq: -1 }, 100);
      expect(Buffer.concat(chunks.map((c) => c.data)).toString()).to.equal('begin\r\n');
      expect((await h.getTask(task.id)).failureReason).to.equal('given up elsewhere');
    });

    it('pushes tasks only once the agent speaks after the Welcome, with the target\'s run_as', async () => {
      await h.createTarget('tr', 'r1', 'bash', { runAs: 'postgres' });
      const token = await h.agentToken('r1');
      const task = await h.createTask('tr', 'echo hi');
      const stream = raw(token);
      stream.hello({ name: 'r1', bootId: randomId() });
      const welcome = await stream.welcome();
      expect(welcome.sessionSecret).to.not.equal('');
      // Round trips through the server and its store: the task is still waiting.
      await h.api.call(h.api.agents, h.api.agents.listAgents, {});
      expect((await h.getTask(task.id)).status).to.equal(TaskStatus.TASK_STATUS_READY);
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      const run = await stream.next((m) => m.message?.$case === 'run');
      expect(run.message?.$case === 'run' && [run.message.value.taskId, run.message.value.runAs]).to.deep.equal([task.id, 'postgres']);
      // Its own task it may report on.
      stream.send({ $case: 'started', value: { taskId: task.id, time: new Date(), pid: 1 } });
      stream.send({ $case: 'output', value: { taskId: task.id, seq: 0, offset: 0, data: Buffer.from('hi\r\n') } });
      stream.send({ $case: 'exit', value: { taskId: task.id, exitCode: 0, signal: '', error: '', chunks: 1, totalBytes: 4, timedOut: false, droppedBytes: 0, findings: {} } });
      const { task: done, output } = await h.finished(task.id);
      expect([done.status, output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'hi\r\n']);
    });

    it('ends a stream whose output chunk does not start where the stored output ends, storing nothing of it', async () => {
      await h.createTarget('to', 'o1');
      const token = await h.agentToken('o1');
      const task = await h.createTask('to', 'echo hi');
      const stream = raw(token);
      stream.hello({ name: 'o1', bootId: randomId() });
      await stream.welcome();
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await stream.next((m) => m.message?.$case === 'run');
      stream.send({ $case: 'started', value: { taskId: task.id, time: new Date(), pid: 1 } });
      stream.send({ $case: 'output', value: { taskId: task.id, seq: 0, offset: 0, data: Buffer.from('hi\r\n') } });
      await stream.next(isAck(task.id));
      // Next to the 2^53 edge, where an end offset would round (a stolen token's agent).
      stream.send({ $case: 'output', value: { taskId: task.id, seq: 1, offset: Number.MAX_SAFE_INTEGER - 1, data: randomBytes(1025) } });
      const ending = await stream.ended;
      expect([ending.code, ending.details]).to.deep.equal(['INVALID_ARGUMENT', `task ${task.id}: output chunk 1 starts at offset ${Number.MAX_SAFE_INTEGER - 1}, not at 4 where the output stored so far ends`]);
      expect(await h.store.chunkStats(task.id)).to.deep.equal({ chunks: 1, bytes: 4 });
      expect((await h.logs(task.id, { follow: false })).output.toString()).to.equal('hi\r\n');
    });

    it("writes a running task's dropped-output total at most once a second, however often heartbeats report it", async function () {
      this.timeout(15_000);
      await h.createTarget('tp', 'p1');
      const token = await h.agentToken('p1');
      const task = await h.createTask('tp', 'echo hi');
      const stream = raw(token);
      stream.hello({ name: 'p1', bootId: randomId() });
      await stream.welcome();
      stream.send({ $case: 'heartbeat', value: { tasks: [] } });
      await stream.next((m) => m.message?.$case === 'run');
      stream.send({ $case: 'started', value: { taskId: task.id, time: new Date(), pid: 1 } });
      while ((await h.getTask(task.id)).status !== TaskStatus.TASK_STATUS_RUNNING) await new Promise((r) => setTimeout(r, 20));
      /** Store task patches so far (the server's own store metric: the flood below is the only writer). */
      const patches = async (): Promise<number> => {
        const metric = await h.server.metrics.registry.getSingleMetric('taskgate_store_operation_seconds')!.get();
        return (metric.values as Array<{ metricName?: string; labels: Record<string, unknown>; value: number }>).find((v) => v.metricName === 'taskgate_store_operation_seconds_count' && v.labels.op === 'patchTask')?.value ?? 0;
      };
      const before = await patches();
      const start = Date.now();
      // 400 heartbeats over about 1.6 s, each with a larger total, as a hostile agent would send them.
      for (let i = 1; i <= 400; i++) {
        stream.send({ $case: 'heartbeat', value: { tasks: [{ taskId: task.id, droppedBytes: i }] } });
        if (i % 100 === 0) await new Promise((r) => setTimeout(r, 400));
      }
      // A heartbeat past the throttle window carries the last total to the store.
      await new Promise((r) => setTimeout(r, 1100));
      stream.send({ $case: 'heartbeat', value: { tasks: [{ taskId: task.id, droppedBytes: 400 }] } });
      for (let i = 0; i < 100 && (await h.getTask(task.id)).outputDroppedBytes !== 400; i++) await new Promise((r) => setTimeout(r, 20));
      const seconds = (Date.now() - start) / 1000;
      expect((await h.getTask(task.id)).outputDroppedBytes).to.equal(400);
      expect(await patches() - before).to.be.within(1, Math.ceil(seconds) + 1);
    });

    it('runs tasks waiting for an agent as soon as it connects, not at its first heartbeat', async function () {
      this.timeout(10_000);
      await h.close();
      const location = (await kind.location())!;
      // The first heartbeat is due 15 s after the Welcome.
      h = await Harness.start(location, { heartbeatIntervalMs: 60_000, leaseMs: 3_600_000 });
      await h.createTarget('t1', 'a1');
      const task = await h.createTask('t1', 'echo at-once');
      await h.startAgent('a1');
      const { task: done, output } = await h.finished(task.id);
      expect([done.status, output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'at-once\r\n']);
    });

    it('a legitimate reconnect resumes its boot and keeps its running task', async () => {
      const proxy = await TcpProxy.start(h.address);
      closers.push(() => proxy.close());
      await h.createTarget('t1', 'a1');
      const agent = await h.startAgent('a1', { server: proxy.address });
      let starts = 0;
      agent.on('task-start', () => starts++);
      const gate = gated('release');
      const task = await h.createTask('t1', gate.script);
      await untilOutput(h.api, task.id, 'begin');
      const before = (await h.store.getAgent('a1'))!;
      const lost = new Promise((resolve) => agent.once('state', resolve));
      proxy.cut();
      expect(await lost).to.equal('backoff');
      const back = new Promise<void>((resolve) => {
        const on = (s: string): void => {
          if (s !== 'connected') return;
          agent.off('state', on);
          resolve();
        };
        agent.on('state', on);
      });
      proxy.restore();
      await back;
      const after = (await h.store.getAgent('a1'))!;
      // Same boot, same token; a new secret, and the one it resumed with kept as the previous.
      expect([after.bootId, after.tokenId]).to.deep.equal([before.bootId, before.tokenId]);
      expect(after.secretHashes).to.have.length(2);
      expect(after.secretHashes[1]).to.equal(before.secretHashes[0]);
      expect(after.secretHashes[0]).to.not.equal(before.secretHashes[0]);
      expect((await h.getTask(task.id)).status).to.equal(TaskStatus.TASK_STATUS_RUNNING);
      gate.release();
      const { task: done, output } = await h.finished(task.id);
      expect([done.status, output.toString(), starts]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'begin\r\nreal-end\r\n', 1]);
    });

    it('resumes with the current or the previous secret only, and only with the same token', async () => {
      const token = await h.agentToken('r2');
      const otherToken = await h.agentToken('r2');
      const bootId = randomId();
      const open = async (secret: string, with_ = token): Promise<Welcome | Ending> => {
        const s = raw(with_);
        s.hello({ name: 'r2', bootId, resumeSecret: secret });
        const first = await Promise.race([s.welcome(), s.ended]);
        if (!('code' in first)) s.send({ $case: 'heartbeat', value: { tasks: [] } });
        return first;
      };
      const secretOf = (w: Welcome | Ending): string => {
        if ('code' in w) throw new Error(`refused: ${w.code} ${w.details}`);
        return w.sessionSecret;
      };
      const s1 = secretOf(await open(''));
      // Its Welcome lost in flight, the agent still holds s1.
      const s2 = secretOf(await open(s1));
      const s3 = secretOf(await open(s1));
      expect(new Set([s1, s2, s3]).size).to.equal(3);
      // s2 never reached anyone and is forgotten; s3 is current, s1 previous.
      expect(await open(s2)).to.deep.include({ code: 'PERMISSION_DENIED' });
      expect(await open(s3, otherToken)).to.deep.include({ code: 'PERMISSION_DENIED' });
      const s4 = secretOf(await open(s3));
      expect(await open(s1)).to.deep.include({ code: 'PERMISSION_DENIED' });
      // Another process (a new boot id) while this session is live here.
      const other = raw(token);
      other.hello({ name: 'r2', bootId: randomId() });
      expect((await other.ended).code).to.equal('ALREADY_EXISTS');
      secretOf(await open(s4));
    });

    it('sets, shows and checks run_as on targets', async () => {
      const get = async (): Promise<string> => (await h.api.call(h.api.targets, h.api.targets.getTarget, { name: 'db' })).target!.runAs;
      await h.createTarget('db', 'a1', 'bash', { runAs: 'postgres' });
      expect(await get()).to.equal('postgres');
      const update = (runAs: string) =>
        h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 'db', runAs }), updateMask: ['run_as'] });
      expect((await update('deploy_1')).target?.runAs).to.equal('deploy_1');
      expect(await get()).to.equal('deploy_1');
      // An update of other fields leaves it.
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 'db', message: 'm' }), updateMask: ['message'] });
      expect(await get()).to.equal('deploy_1');
      for (const bad of ['Root', '1abc', 'a b', 'x'.repeat(33), '../etc', 'root;id']) {
        const err = (await update(bad).then(() => null, (e: ServiceError) => e))!;
        expect([bad, err && status[err.code]]).to.deep.equal([bad, 'INVALID_ARGUMENT']);
        expect(err.details).to.contain(`target.run_as "${bad}"`);
        const created = await h.createTarget(`bad-${randomId().slice(0, 6).toLowerCase()}`, 'a1', 'bash', { runAs: bad }).then(() => null, (e: ServiceError) => e);
        expect(created && status[created.code]).to.equal('INVALID_ARGUMENT');
      }
      expect((await update('')).target?.runAs).to.equal('');
      expect(await get()).to.equal('');
    });

    it('refuses reserved secret names in a target mapping and in stored secrets, naming the key', async () => {
      const refusal = (p: Promise<unknown>) => p.then(() => null, (e: ServiceError) => e);
      for (const name of ['PATH', 'LD_PRELOAD', 'BASH_ENV', 'bash_func_x', 'TASKGATE_TOKEN', 'NODE_OPTIONS', '1X']) {
        const created = await refusal(h.createTarget(`m-${randomId().slice(0, 6).toLowerCase()}`, 'a1', 'bash', { secretProvider: 'stored', secretMapping: { [name]: 'k' } }));
        expect([name, created && status[created.code]]).to.deep.equal([name, 'INVALID_ARGUMENT']);
        expect(created!.details).to.contain(`target.secret_mapping key "${name}"`);
      }
      await h.createTarget('s', 'a1', 'bash', { secretProvider: 'stored', secretMapping: { DB_PASS: 'db_pass' } });
      const updated = await refusal(
        h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 's', secretProvider: 'stored', secretMapping: { PYTHONPATH: 'x' } }), updateMask: ['secret_mapping'] }),
      );
      expect([updated && status[updated.code], updated?.details]).to.deep.equal([
        'INVALID_ARGUMENT',
        'target.secret_mapping key "PYTHONPATH" would change how the task\'s interpreter runs or pose as Taskgate\'s own settings; map the secret to another name',
      ]);
      const set = (key: string) => h.api.call(h.api.targets, h.api.targets.setSecret, { target: 's', key, value: 'v' });
      for (const key of ['HOME', 'LD_LIBRARY_PATH', 'TASKGATE_X']) {
        const err = await refusal(set(key));
        expect([key, err && status[err.code]]).to.deep.equal([key, 'INVALID_ARGUMENT']);
        expect(err!.details).to.contain(`secret key "${key}"`);
      }
      await set('db_pass');
      expect((await h.api.call(h.api.targets, h.api.targets.listSecrets, { target: 's' })).keys).to.deep.equal(['db_pass']);
    });

    it('shows no boot id anywhere a user looks, and takes --run-as on the command line', async function () {
      if (kind.name !== 'sqlite') this.skip();
      await h.startAgent('a1');
      const bootId = (await h.store.getAgent('a1'))!.bootId;
      const cli = (...args: string[]) =>
        new Promise<string>((resolve, reject) => {
          execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } }, (err, stdout, stderr) =>
            err ? reject(new Error(`${args.join(' ')}: ${stderr}`)) : resolve(stdout),
          );
        });
      const listed = (await cli('agents', 'list')) + (await cli('agents', 'list', '--json'));
      expect(listed).to.contain('a1');
      expect(listed).to.not.contain(bootId);
      expect(listed).to.not.contain(bootId.slice(0, 8));
      expect(await cli('targets', 'create', '--name', 'pg', '--agent', 'a1', '--run-as', 'postgres')).to.match(/^run as\s+postgres$/m);
      expect(await cli('targets', 'get', 'pg')).to.match(/^run as\s+postgres$/m);
      expect(await cli('targets', 'update', 'pg', '--run-as', '')).to.match(/^run as\s+a uid of its own$/m);
      const task = await h.createTask('pg', 'true');
      expect(JSON.stringify(await h.getTask(task.id))).to.not.contain(bootId);
    });
  });
}
