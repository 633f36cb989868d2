/**
 * The browser API (docs/console.md): the same services over Connect on the
 * HTTP listener. curl works exactly as the docs show it; a log follow
 * streams over connect-node's own client with the bytes gRPC gives; the
 * cross-site guard refuses forged requests before anything acts; the
 * listener serves HTTPS with the gRPC certificate; and a stop ends a
 * watcher UNAVAILABLE ("follow again"), as on gRPC.
 */
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TargetService } from '../../gen/es/taskgate/v1/target_pb.js';
import { TaskService, TaskStatus } from '../../gen/es/taskgate/v1/task_pb.js';
import { UserService } from '../../gen/es/taskgate/v1/user_pb.js';
import { TaskgateServer } from '../../server/server.js';
import { Pki } from '../helpers/certs.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

/** Runs curl; resolves with the body and HTTP status whatever the status. */
function curl(...args: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) =>
    execFile('curl', ['-sS', '-w', '\n%{http_code}', ...args], (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl failed: ${stderr}`));
      const at = stdout.lastIndexOf('\n');
      resolve({ body: stdout.slice(0, at), status: Number(stdout.slice(at + 1)) });
    }),
  );
}

describe('the browser API (Connect)', function () {
  let h: Harness;
  let url: string;

  before(async () => {
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!, { httpListen: '127.0.0.1:0' });
    url = h.server.httpUrl!;
    await h.startAgent('a1');
    await h.createTarget('box', 'a1');
  });

  after(async () => {
    await h?.close();
  });

  it('answers the curl line docs/console.md shows, with the same tasks as gRPC', async () => {
    const task = await h.createTask('box', 'echo from-curl');
    await h.finished(task.id);
    const { status, body } = await curl(
      '-H',
      `authorization: Bearer ${h.adminToken}`,
      '-H',
      'content-type: application/json',
      '-d',
      '{}',
      `${url}/taskgate.v1.TaskService/ListTasks`,
    );
    expect(status).to.equal(200);
    const listed = (JSON.parse(body) as { tasks: Array<{ id: string; status: string; created: string; outputBytes: string }> }).tasks.find((t) => t.id === task.id);
    const viaGrpc = await h.getTask(task.id);
    expect(listed).to.include({ status: 'TASK_STATUS_SUCCESS', created: viaGrpc.created!.toISOString(), outputBytes: String(viaGrpc.outputBytes) });
    // Counted in the same metric as gRPC calls, told apart by transport.
    const counted = (await h.server.metrics.registry.getSingleMetric('taskgate_rpc_handled_total')!.get()).values;
    const count = (transport: string): number => counted.find((v) => v.labels.method === 'TaskService/ListTasks' && v.labels.code === 'OK' && v.labels.transport === transport)?.value ?? 0;
    expect(count('connect')).to.be.at.least(1);
    expect(counted.filter((v) => v.labels.method === 'TaskService/GetTask' && v.labels.transport === 'grpc').length).to.equal(1);
  });

  it('answers errors with their code and one-line message, as Connect spells them', async () => {
    const anonymous = await curl('-H', 'content-type: application/json', '-d', '{}', `${url}/taskgate.v1.TaskService/ListTasks`);
    expect(anonymous.status).to.equal(401);
    expect(JSON.parse(anonymous.body)).to.deep.include({ code: 'unauthenticated' });
    const missing = await curl('-H', `authorization: Bearer ${h.adminToken}`, '-H', 'content-type: application/json', '-d', '{"id":"nope"}', `${url}/taskgate.v1.TaskService/GetTask`);
    expect([missing.status, JSON.parse(missing.body)]).to.deep.equal([404, { code: 'not_found', message: 'task nope not found' }]);
    const agentStream = await curl('-H', `authorization: Bearer ${h.adminToken}`, '-H', 'content-type: application/connect+proto', '--data-binary', '', `${url}/taskgate.v1.AgentService/Connect`);
    expect(agentStream.status).to.equal(501);
    expect((JSON.parse(agentStream.body) as { message: string }).message).to.match(/^AgentService\.Connect is served over gRPC only/);
  });

  it("follows a task's log over connect-node's client, with the bytes gRPC gives, then the finished task", async () => {
    const transport = createConnectTransport({ baseUrl: url, httpVersion: '1.1', useBinaryFormat: true });
    const tasks: Client<typeof TaskService> = createClient(TaskService, transport);
    const headers = { authorization: `Bearer ${h.adminToken}` };
    const task = await h.createTask('box', 'for i in $(seq 1 200); do echo "line $i"; done; sleep 0.2; echo last');
    const parts: Buffer[] = [];
    let offset = 0;
    let finished: string | undefined;
    for await (const message of tasks.getTaskLogs({ id: task.id, follow: true }, { headers })) {
      if (message.event.case === 'chunk') {
        // Offsets are int64 (bigint here): each chunk starts where the last ended.
        expect(message.event.value.offset).to.equal(BigInt(offset));
        offset += message.event.value.data.length;
        parts.push(Buffer.from(message.event.value.data));
      } else if (message.event.case === 'finished') {
        finished = message.event.value.id;
        expect(message.event.value.outputBytes).to.equal(BigInt(offset));
      }
    }
    expect(finished).to.equal(task.id);
    const output = Buffer.concat(parts);
    expect(output.equals((await h.logs(task.id, { follow: false })).output)).to.equal(true);
    expect(output.toString()).to.match(/^line 1\r\n[\s\S]*line 200\r\nlast\r\n$/);
  });

  it('refuses a forged cross-origin POST and a form post before anything acts', async () => {
    const before = (await h.api.call(h.api.tasks, h.api.tasks.listTasks, { pageSize: 500, pageToken: '', statuses: [], target: '', awaitingMyReview: false, createdByMe: false })).tasks.length;
    const createTask = `${url}/taskgate.v1.TaskService/CreateTask`;
    const body = JSON.stringify({ target: 'box', script: 'echo pwned' });
    // What a page on another site can make the browser send, even with a token the browser holds.
    const forged = await curl('-H', `authorization: Bearer ${h.adminToken}`, '-H', 'content-type: application/json', '-H', 'origin: https://evil.example', '-d', body, createTask);
    expect(forged.status).to.equal(403);
    expect(JSON.parse(forged.body)).to.deep.equal({ code: 'permission_denied', message: `cross-origin request refused: Origin https://evil.example is not this server's (${url})` });
    const crossSite = await curl('-H', `authorization: Bearer ${h.adminToken}`, '-H', 'content-type: application/json', '-H', 'sec-fetch-site: cross-site', '-d', body, createTask);
    expect(crossSite.status).to.equal(403);
    for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain']) {
      const form = await curl('-H', `authorization: Bearer ${h.adminToken}`, '-H', `content-type: ${type}`, '-H', `origin: ${url}`, '-d', body, createTask);
      expect([form.status, (JSON.parse(form.body) as { code: string }).code], type).to.deep.equal([415, 'invalid_argument']);
    }
    const after = (await h.api.call(h.api.tasks, h.api.tasks.listTasks, { pageSize: 500, pageToken: '', statuses: [], target: '', awaitingMyReview: false, createdByMe: false })).tasks.length;
    expect(after, 'tasks created by refused requests').to.equal(before);
    // The console's own requests (same origin) go through.
    const own = await curl('-H', `authorization: Bearer ${h.adminToken}`, '-H', 'content-type: application/json', '-H', `origin: ${url}`, '-H', 'sec-fetch-site: same-origin', '-d', body, createTask);
    expect(own.status).to.equal(200);
    await h.finished((JSON.parse(own.body) as { task: { id: string } }).task.id);
  });
});

describe('the browser API over HTTPS', function () {
  let pki: Pki;
  let dir: string;
  let server: TaskgateServer | undefined;

  before(() => {
    pki = new Pki();
    dir = mkdtempSync(join(tmpdir(), 'taskgate-connect-'));
  });

  after(async () => {
    await server?.stop();
    pki?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the API with the gRPC certificate, HTTP/2 for browsers and HTTP/1.1 for curl, and ends a watcher UNAVAILABLE on a stop', async () => {
    const ca = pki.ca('connect-ca');
    const pem = pki.issue(ca, 'localhost', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
    server = await TaskgateServer.start({ dataDir: dir, listen: '127.0.0.1:0', httpListen: '127.0.0.1:0', tls: { cert: pki.read(pem.cert), key: pki.read(pem.key) } });
    await server.ensureAdmin('admin@test');
    const token = await server.issueUserToken('admin@test', 'test');
    const url = server.httpUrl!;
    expect(url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
    const whoami = await curl('--cacert', ca.cert, '--http1.1', '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json', '-d', '{}', `${url}/taskgate.v1.UserService/WhoAmI`);
    expect([whoami.status, (JSON.parse(whoami.body) as { user: { email: string } }).user.email]).to.deep.equal([200, 'admin@test']);

    const transport = createConnectTransport({ baseUrl: url, httpVersion: '2', nodeOptions: { ca: pki.read(ca.cert) } });
    const headers = { authorization: `Bearer ${token}` };
    expect((await createClient(UserService, transport).whoAmI({}, { headers })).user?.email).to.equal('admin@test');
    // A task whose agent never connects: its watcher waits until the server stops.
    await createClient(TargetService, transport).createTarget({ target: { name: 'ghost-box', agent: 'ghost', type: 'bash' } }, { headers });
    const tasks = createClient(TaskService, transport);
    const { task } = await tasks.createTask({ target: 'ghost-box', script: 'true' }, { headers });
    expect(task?.status).to.equal(TaskStatus.READY);
    // WatchTask sends the task as it is first, so the call is live at the server before the stop.
    const watch = tasks.watchTask({ id: task!.id }, { headers })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.task?.id).to.equal(task!.id);
    const ended = (async () => {
      try {
        while (!(await watch.next()).done) {
          // nothing changes: nothing runs it
        }
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      }
    })();
    await server.stop();
    server = undefined;
    const err = await ended;
    expect([err?.code, err?.rawMessage]).to.deep.equal([Code.Unavailable, 'server stopping; follow again']);
  });
});
