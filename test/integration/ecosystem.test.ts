/**
 * Taskgate among standard gRPC tools: grpcurl through server reflection,
 * grpc-health-probe on grpc.health.v1 (SERVING, then NOT_SERVING while
 * draining or when the store is gone), TLS and mutual TLS for agents,
 * Prometheus metrics, and every flag readable from the environment.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect } from 'node:tls';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Target } from '../../gen/taskgate/v1/target.js';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { UserServiceClient } from '../../gen/taskgate/v1/user.js';
import { TaskgateAgent } from '../../agent/agent.js';
import { agentCredentials } from '../../agent/connection.js';
import { Api } from '../../cli/client.js';
import { TaskgateServer } from '../../server/server.js';
import { TASKGATE_SERVICES } from '../../server/standard-services.js';
import { Pki, type Pem } from '../helpers/certs.js';
import { ADMIN_EMAIL, Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const BIN = join(process.cwd(), '.cache', 'bin');
const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

/** Runs a tool from .cache/bin; `output` is stdout and stderr together. */
function tool(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string; output: string }> {
  const file = join(BIN, name);
  if (!existsSync(file)) throw new Error(`${file} is missing: test/tools/build.mjs builds it (npm test runs it)`);
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr, output: `${stdout}${stderr}` }));
  });
}

describe('standard gRPC services: reflection and health (grpcurl, grpc-health-probe)', function () {
  let h: Harness;

  before(async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!, { drainMs: 4000 });
  });

  after(async () => h?.close());

  it('grpcurl lists and describes the services through reflection, and calls one', async () => {
    const list = await tool('grpcurl', ['-plaintext', h.address, 'list']);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout.trim().split('\n').sort()).to.include.members([
      'grpc.health.v1.Health',
      'taskgate.v1.AgentService',
      'taskgate.v1.EventService',
      'taskgate.v1.TargetService',
      'taskgate.v1.TaskService',
      'taskgate.v1.UserService',
    ]);
    const describe = await tool('grpcurl', ['-plaintext', h.address, 'describe', 'taskgate.v1.TaskService.CreateTask']);
    expect(describe.stdout).to.contain('rpc CreateTask ( .taskgate.v1.CreateTaskRequest ) returns ( .taskgate.v1.CreateTaskResponse )');
    const message = await tool('grpcurl', ['-plaintext', h.address, 'describe', 'taskgate.v1.Task']);
    expect(message.stdout).to.contain('.google.protobuf.Timestamp created');
    await h.createTarget('t', 'nobody');
    const call = await tool('grpcurl', ['-plaintext', '-H', `authorization: Bearer ${h.adminToken}`, '-d', '{"target": "t", "script": "echo from grpcurl"}', h.address, 'taskgate.v1.TaskService/CreateTask']);
    expect(call.code, call.stderr).to.equal(0);
    const created = JSON.parse(call.stdout) as { task: { id: string; status: string; script: string } };
    expect(created.task).to.include({ status: 'TASK_STATUS_READY', script: 'echo from grpcurl' });
    const denied = await tool('grpcurl', ['-plaintext', '-d', '{}', h.address, 'taskgate.v1.TaskService/ListTasks']);
    expect(denied.stderr).to.contain('Code: Unauthenticated');
  });

  it('grpcurl describes every service it lists and calls Health/Check and each read-only Taskgate method', async () => {
    const list = await tool('grpcurl', ['-plaintext', h.address, 'list']);
    expect(list.code, list.stderr).to.equal(0);
    const services = list.stdout.trim().split('\n');
    expect(services).to.include.members(['grpc.health.v1.Health', ...TASKGATE_SERVICES]);
    for (const service of services) {
      // describe resolves the service's file and every file it imports: one malformed descriptor fails it.
      const described = await tool('grpcurl', ['-plaintext', h.address, 'describe', service]);
      expect(described.code, `${service}: ${described.stderr}`).to.equal(0);
      expect(described.stdout, service).to.contain(`${service} is a service:`);
    }
    const statuses = await tool('grpcurl', ['-plaintext', h.address, 'describe', 'grpc.health.v1.HealthListResponse']);
    expect(statuses.stdout).to.contain('map<string, .grpc.health.v1.HealthCheckResponse> statuses = 1;');
    const check = await tool('grpcurl', ['-plaintext', h.address, 'grpc.health.v1.Health/Check']);
    expect([check.code, JSON.parse(check.stdout)], check.stderr).to.deep.equal([0, { status: 'SERVING' }]);
    const named = await tool('grpcurl', ['-plaintext', '-d', '{"service": "taskgate.v1.TaskService"}', h.address, 'grpc.health.v1.Health/Check']);
    expect(JSON.parse(named.stdout)).to.deep.equal({ status: 'SERVING' });

    await h.startAgent('grpcurl-agent');
    await h.createTarget('grpcurl-target', 'grpcurl-agent');
    const task = await h.createTask('grpcurl-target', 'printf grpcurl-output');
    await h.finished(task.id);
    const call = async (method: string, body: object): Promise<string> => {
      const r = await tool('grpcurl', ['-plaintext', '-H', `authorization: Bearer ${h.adminToken}`, '-d', JSON.stringify(body), h.address, `taskgate.v1.${method}`]);
      expect(r.code, `${method}: ${r.stderr}`).to.equal(0);
      return r.stdout;
    };
    // Each read-only method once (those that change nothing), with what it answers checked.
    const id = task.id;
    expect(await call('TaskService/GetTask', { id })).to.contain('"status": "TASK_STATUS_SUCCESS"');
    expect(await call('TaskService/ListTasks', { target: 'grpcurl-target' })).to.contain(`"id": "${id}"`);
    expect(await call('TaskService/WatchTask', { id })).to.contain('"status": "TASK_STATUS_SUCCESS"');
    expect(await call('TaskService/GetTaskLogs', { id })).to.contain(`"data": "${Buffer.from('grpcurl-output').toString('base64')}"`);
    expect(await call('TargetService/GetTarget', { name: 'grpcurl-target' })).to.contain('"agent": "grpcurl-agent"');
    expect(await call('TargetService/ListTargets', {})).to.contain('"name": "grpcurl-target"');
    expect(JSON.parse(await call('TargetService/ListSecrets', { target: 'grpcurl-target' }))).to.deep.equal({});
    expect(await call('AgentService/ListAgents', {})).to.contain('"name": "grpcurl-agent"');
    expect(await call('UserService/WhoAmI', {})).to.contain(`"email": "${ADMIN_EMAIL}"`);
    expect(await call('UserService/GetUser', { email: ADMIN_EMAIL })).to.contain(`"email": "${ADMIN_EMAIL}"`);
    expect(await call('UserService/ListUsers', {})).to.contain(`"email": "${ADMIN_EMAIL}"`);
    expect(await call('UserService/ListTokens', {})).to.contain('"name": "harness"');
    expect(await call('EventService/ListEvents', { resource: `tasks/${id}` })).to.contain(id);
  });

  it("prints with the CLI's --json exactly what grpcurl prints for the same call (int64 as strings, maps, timestamps)", async () => {
    await h.startAgent('json-agent');
    await h.createTarget('json-target', 'json-agent', 'bash', { redact: ['EMAIL_ADDRESS'] });
    const task = await h.createTask('json-target', 'echo mail me at someone@example.com');
    await h.finished(task.id);
    const cli = (...args: string[]): Promise<unknown> =>
      new Promise((resolve, reject) =>
        execFile(process.execPath, [CLI, ...args, '--json'], { env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } }, (err, stdout, stderr) =>
          err ? reject(new Error(`${args.join(' ')}: ${stderr}`)) : resolve(JSON.parse(stdout)),
        ),
      );
    const grpcurl = async (method: string, body: object): Promise<Record<string, unknown>> => {
      const r = await tool('grpcurl', ['-plaintext', '-H', `authorization: Bearer ${h.adminToken}`, '-d', JSON.stringify(body), h.address, `taskgate.v1.${method}`]);
      expect(r.code, r.stderr).to.equal(0);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    const shown = (await cli('tasks', 'get', task.id)) as Record<string, unknown>;
    expect(shown).to.deep.equal((await grpcurl('TaskService/GetTask', { id: task.id })).task);
    expect(shown).to.include({ outputBytes: String('mail me at [EMAIL_ADDRESS]\r\n'.length), status: 'TASK_STATUS_SUCCESS' });
    expect(shown.findings).to.deep.equal({ EMAIL_ADDRESS: '1' });
    expect(await cli('tasks', 'list', '--target', 'json-target')).to.deep.equal(await grpcurl('TaskService/ListTasks', { target: 'json-target', pageSize: 50 }));
    expect(await cli('targets', 'get', 'json-target')).to.deep.equal((await grpcurl('TargetService/GetTarget', { name: 'json-target' })).target);
    expect(await cli('whoami')).to.deep.equal(await grpcurl('UserService/WhoAmI', {}));
  });

  it('grpc-health-probe reports SERVING, then NOT_SERVING while the server drains', async () => {
    const serving = await tool('grpc-health-probe', [`-addr=${h.address}`]);
    expect([serving.code, serving.output.trim()]).to.deep.equal([0, 'status: SERVING']);
    const service = await tool('grpc-health-probe', [`-addr=${h.address}`, '-service=taskgate.v1.TaskService']);
    expect(service.code, service.stderr).to.equal(0);
    const stopped = h.server.stop();
    const draining = await tool('grpc-health-probe', [`-addr=${h.address}`]);
    expect(draining.code).to.equal(4); // grpc-health-probe's exit status for NOT_SERVING
    expect(draining.output).to.contain('service unhealthy (responded with "NOT_SERVING")');
    await stopped;
  });
});

describe('health follows the store: NOT_SERVING while MongoDB is unreachable', function () {
  it('turns NOT_SERVING when the MongoDB-wire server goes away', async function () {
    this.timeout(120_000);
    const binary = join(process.cwd(), '.cache', 'ferretdb-test');
    if (!existsSync(binary)) {
      if (process.env.CI === 'true') throw new Error(`${binary} is missing`);
      this.skip();
    }
    // A FerretDB of this test's own, so stopping it disturbs no other suite.
    const dir = mkdtempSync(join(tmpdir(), 'taskgate-health-ferret-'));
    const ferret = spawn(binary, ['-dir', dir], { stdio: ['pipe', 'pipe', 'ignore'] });
    const uri = await new Promise<string>((resolve) => {
      createInterface({ input: ferret.stdout! }).on('line', (line) => {
        const m = /^ready (\S+)$/.exec(line);
        if (m?.[1]) resolve(m[1]);
      });
    });
    const server = await TaskgateServer.start({ listen: '127.0.0.1:0', mongodbUri: `${uri}health` });
    try {
      const address = `127.0.0.1:${server.port}`;
      expect((await tool('grpc-health-probe', [`-addr=${address}`])).output.trim()).to.equal('status: SERVING');
      const gone = new Promise((resolve) => ferret.once('exit', resolve));
      ferret.kill('SIGKILL');
      await gone;
      let probe = await tool('grpc-health-probe', [`-addr=${address}`]);
      for (let i = 0; i < 40 && probe.code !== 4; i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        probe = await tool('grpc-health-probe', [`-addr=${address}`]);
      }
      expect(probe.code, probe.output).to.equal(4);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TLS, and mutual TLS for agents', function () {
  let pki: Pki;
  let ca: Pem;
  let server: TaskgateServer;
  let api: Api;
  let adminToken: string;
  let dir: string;
  const agents: TaskgateAgent[] = [];

  before(async () => {
    pki = new Pki();
    ca = pki.ca('taskgate-test-ca');
    const serverPem = pki.issue(ca, 'localhost', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
    dir = mkdtempSync(join(tmpdir(), 'taskgate-tls-'));
    chmodSync(dir, 0o711); // agent work dirs inside: tasks run as users of their own
    server = await TaskgateServer.start({
      listen: '127.0.0.1:0',
      dataDir: dir,
      tls: { cert: pki.read(serverPem.cert), key: pki.read(serverPem.key) },
      agentTls: { listen: '127.0.0.1:0', clientCa: pki.read(ca.cert) },
      handshakeTimeoutMs: 1500,
    });
    await server.ensureAdmin('admin@tls');
    adminToken = await server.issueUserToken('admin@tls', 'tls');
    api = new Api({ server: `127.0.0.1:${server.port}`, token: adminToken, tlsCa: ca.cert });
    await api.call(api.targets, api.targets.createTarget, { target: Target.fromPartial({ name: 't', agent: 'a1' }) });
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    api?.close();
    await server?.stop();
    pki?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts agent "a1" with `pem` on `port`; resolves "connected" or the fatal error's code. */
  async function agentOutcome(pem: Pem | null, port: number, caFile = ca.cert): Promise<string> {
    const { token } = await api.call(api.agents, api.agents.createAgentToken, { name: 'a1', ttl: undefined });
    const agent = new TaskgateAgent({
      server: `127.0.0.1:${port}`,
      token,
      name: 'a1',
      workDir: join(dir, `agent-${agents.length}`),
      credentials: agentCredentials({ tlsCa: caFile, tlsCert: pem?.cert, tlsKey: pem?.key }),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    agents.push(agent);
    const outcome = new Promise<string>((resolve) => {
      agent.on('state', (s: string) => s === 'connected' && resolve('connected'));
      agent.on('fatal', (err: ServiceError) => resolve(`${status[err.code]}: ${err.details}`));
      // A handshake the server refuses never gets a status: it keeps retrying.
      setTimeout(() => resolve('not connected after 5 s'), 5000);
    });
    agent.start();
    const result = await outcome;
    if (result !== 'connected') await agent.stop();
    return result;
  }

  it('serves the API over TLS, verified against the CA, and refuses plaintext', async () => {
    const me = await api.call(api.users, api.users.whoAmI, {});
    expect(me.user?.email).to.equal('admin@tls');
    const plain = new Api({ server: `127.0.0.1:${server.port}`, token: 'x' });
    const err = await plain.call(plain.users, plain.users.whoAmI, {}).catch((e: Error) => e.message);
    plain.close();
    expect(err).to.match(/cannot reach the Taskgate server|UNAVAILABLE/);
  });

  it('says so in one line when the CLI forgets TLS, and prints no warning for a TLS call to an IP address', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [join(import.meta.dirname, '..', '..', 'cli', 'main.js'), ...args], (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const plain = await cli('whoami', '--server', `127.0.0.1:${server.port}`, '--token', adminToken);
    expect([plain.code, plain.stderr]).to.deep.equal([
      1,
      `taskgate: the server at 127.0.0.1:${server.port} speaks TLS: add --tls-ca FILE (the CA of its certificate) or --tls (system roots); TASKGATE_TLS_CA, TASKGATE_TLS\n`,
    ]);
    const secure = await cli('whoami', '--server', `127.0.0.1:${server.port}`, '--token', adminToken, '--tls-ca', ca.cert);
    expect([secure.code, secure.stderr]).to.deep.equal([0, '']);
    expect(secure.stdout).to.match(/^admin@tls /);
  });

  it('stops an agent with one line when TLS is on at one end only', async () => {
    const outcome = async (agent: TaskgateAgent): Promise<string> => {
      agents.push(agent);
      let timer: NodeJS.Timeout | undefined;
      const result = new Promise<string>((resolve) => {
        agent.on('state', (s: string) => s === 'connected' && resolve('connected'));
        agent.on('fatal', (err: ServiceError) => resolve(`${status[err.code]}: ${err.details}`));
        timer = setTimeout(() => resolve('still retrying after 10 s'), 10_000);
      });
      agent.start();
      const said = await result.finally(() => clearTimeout(timer));
      await agent.stop();
      return said;
    };
    const { token } = await api.call(api.agents, api.agents.createAgentToken, { name: 'a1', ttl: undefined });
    const base = { token, name: 'a1', backoff: { initialMs: 50, maxMs: 200 } };
    // A plaintext agent against this TLS server.
    expect(await outcome(new TaskgateAgent({ ...base, server: `127.0.0.1:${server.port}`, workDir: join(dir, 'agent-plain') }))).to.equal(
      `UNAVAILABLE: the server at 127.0.0.1:${server.port} speaks TLS: start the agent with --tls-ca FILE (the CA of its certificate) or --tls`,
    );
    // A TLS agent against a plaintext server.
    const plain = await TaskgateServer.start({ listen: '127.0.0.1:0', dataDir: join(dir, 'plain-server') });
    try {
      const agent = new TaskgateAgent({ ...base, server: `127.0.0.1:${plain.port}`, workDir: join(dir, 'agent-tls'), credentials: agentCredentials({ tlsCa: ca.cert }) });
      expect(await outcome(agent)).to.equal(
        `UNAVAILABLE: the server at 127.0.0.1:${plain.port} does not speak TLS: start the agent without --tls/--tls-ca, or the server with --tls-cert and --tls-key`,
      );
    } finally {
      await plain.stop();
    }
  });

  it('runs a task on an agent that proved its name with a client certificate', async () => {
    const good = pki.issue(ca, 'a1', 'DNS:a1', 'clientAuth');
    expect(await agentOutcome(good, server.agentPort!)).to.equal('connected');
    const { task } = await api.call(api.tasks, api.tasks.createTask, { target: 't', script: 'echo over mtls', message: '', type: '', timeoutSeconds: 0 });
    const done = await new Promise<number>((resolve) => {
      const stream = api.tasks.watchTask({ id: task!.id }, api.metadata);
      stream.on('data', ({ task: t }: { task?: { status: number } }) => {
        if (t && t.status === TaskStatus.TASK_STATUS_SUCCESS) {
          stream.cancel();
          resolve(t.status);
        }
      });
      stream.on('error', () => undefined);
    });
    expect(done).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    await agents.pop()!.stop();
  });

  it('refuses an agent whose certificate names another agent, one without a certificate, and one from another CA', async () => {
    const other = pki.issue(ca, 'a2', 'DNS:a2', 'clientAuth');
    expect(await agentOutcome(other, server.agentPort!)).to.equal('PERMISSION_DENIED: the client certificate names "a2", not agent "a1"');
    // The API address asks for no client certificate: agents are refused there.
    expect(await agentOutcome(null, server.port)).to.match(/^PERMISSION_DENIED: this server requires agents to connect over mutual TLS/);
    // No certificate, or one from another CA, at the agent address: the TLS
    // handshake completes, every call on that connection is UNAUTHENTICATED
    // with the reason (none reaches Taskgate), and the agent stops at once.
    expect(await agentOutcome(null, server.agentPort!)).to.equal(
      "UNAUTHENTICATED: this agent address requires a client certificate: start the agent with --tls-cert and --tls-key (a certificate from the server's --agent-client-ca naming the agent)",
    );
    const rogueCa = pki.ca('rogue-ca');
    const rogue = pki.issue(rogueCa, 'a1', 'DNS:a1', 'clientAuth');
    expect(await agentOutcome(rogue, server.agentPort!)).to.equal(
      "UNAUTHENTICATED: the client certificate was refused: it is not signed by the CA this agent address trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE); use a certificate from the server's --agent-client-ca",
    );
    // Nor does any other method: the refused connection answers every call the same way.
    const intruder = new UserServiceClient(`127.0.0.1:${server.agentPort!}`, credentials.createSsl(pki.read(ca.cert), pki.read(rogue.key), pki.read(rogue.cert)));
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${adminToken}`);
    const refused = await new Promise<ServiceError | null>((resolve) => intruder.whoAmI({}, metadata, (err) => resolve(err)));
    intruder.close();
    expect(refused?.code).to.equal(status.UNAUTHENTICATED);
    expect(refused?.details).to.match(/^the client certificate was refused/);
    // A refused connection that says nothing holds no place: closed within the handshake timeout.
    const silent = tlsConnect({ host: '127.0.0.1', port: server.agentPort!, ca: pki.read(ca.cert), ALPNProtocols: ['h2'], rejectUnauthorized: false });
    silent.on('error', () => undefined);
    silent.resume();
    await new Promise((resolve) => silent.once('secureConnect', resolve));
    await new Promise((resolve) => silent.once('close', resolve));
  });
});

describe('Prometheus metrics', function () {
  let h: Harness;

  before(async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!, { metricsListen: '127.0.0.1:0' });
    await h.startAgent('a1');
    await h.createTarget('t', 'a1');
  });

  after(async () => h?.close());

  it('shows tasks by status, transitions, schedule-to-start, agents, output bytes, streams and store latency after a task runs', async () => {
    const done = await h.finished((await h.createTask('t', 'printf 0123456789')).id);
    expect(done.task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    const text = await (await fetch(`http://127.0.0.1:${h.server.metricsPort}/metrics`)).text();
    const value = (series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      if (!line) throw new Error(`no ${series} in:\n${text}`);
      return Number(line.slice(series.length + 1));
    };
    expect(value('taskgate_tasks{status="success"}')).to.equal(1);
    expect(value('taskgate_tasks{status="running"}')).to.equal(0);
    expect(value('taskgate_task_transitions_total{from="none",to="created"}')).to.equal(1);
    expect(value('taskgate_task_transitions_total{from="ready",to="running"}')).to.equal(1);
    expect(value('taskgate_task_transitions_total{from="running",to="success"}')).to.equal(1);
    expect(value('taskgate_schedule_to_start_seconds_count')).to.equal(1);
    expect(value('taskgate_connected_agents')).to.equal(1);
    expect(value('taskgate_output_bytes_total')).to.equal(10);
    expect(value('taskgate_agent_streams_total{kind="first"}')).to.equal(1);
    // The CLI sends a request id: the binding and the task go in one store step.
    expect(value('taskgate_store_operation_seconds_count{op="insertRequestAndTask",outcome="ok"}')).to.equal(1);
    expect(value('taskgate_process_resident_memory_bytes')).to.be.above(0);
  });
});

describe('flags from the environment', function () {
  function help(...args: string[]): Promise<string> {
    return new Promise((resolve) => execFile(process.execPath, [CLI, ...args, '--help'], (_err, stdout) => resolve(stdout)));
  }

  it('lets every server, dev and agent flag be set through a TASKGATE_* variable, and the README lists them all', async () => {
    const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
    for (const command of ['server', 'dev', 'agent']) {
      // One entry per option: its first line starts "  --flag" (or "  -x, --flag"), continuations are indented deeper.
      const options: string[] = [];
      for (const line of (await help(command)).split('\n')) {
        if (/^ {2}(-\w, )?--/.test(line)) options.push(line.trim());
        else if (/^ {3,}\S/.test(line) && options.length) options[options.length - 1] += ` ${line.trim()}`;
      }
      const flags = options.filter((o) => !o.startsWith('-h, --help'));
      expect(flags.length, command).to.be.above(3);
      for (const option of flags) {
        const env = /env: (TASKGATE_[A-Z_]+)\)$/.exec(option)?.[1];
        expect(env, `${command}: ${option}`).to.be.a('string');
        expect(readme, `README lists ${env}`).to.contain(env!);
      }
    }
  });
});
