/**
 * One member abuses a live `taskgate server` (the README's command, its
 * default limits) the ways issue 15 found, all at once, while another user's
 * task runs: thousands of ListTasks with ever longer status lists, followers
 * of a large output that never read, a flood of watchers, a flood of
 * CreateTask calls, and TCP connections that never speak HTTP/2. The server
 * must refuse what is over the limits with RESOURCE_EXHAUSTED, keep its
 * memory bounded, and run the other user's task.
 */
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Target } from '../../gen/taskgate/v1/target.js';
import { TaskStatus, type GetTaskLogsResponse } from '../../gen/taskgate/v1/task.js';
import { User } from '../../gen/taskgate/v1/user.js';
import { TaskgateAgent } from '../../agent/agent.js';
import { Api } from '../../cli/client.js';
import { CliProcess, freePort } from '../helpers/processes.js';

/** The server process's resident memory, in MiB. */
function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return kb / 1024;
}

/** Growth of the server's RSS the abuse may cause at most, in MiB (measured: see the printed figures). */
const MAX_GROWTH_MIB = 300;

describe('a member abusing the server while another user works', function () {
  this.timeout(240_000);
  let dir: string;
  let server: CliProcess;
  let admin: Api;
  let agent: TaskgateAgent;
  let address: string;
  const clients: Api[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-abuse-'));
    address = `127.0.0.1:${await freePort()}`;
    server = new CliProcess(['server', '--listen', address, '--data-dir', join(dir, 'data')]);
    await server.until(/^First start: /);
    admin = new Api({ server: address, token: readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim() });
    await admin.call(admin.targets, admin.targets.createTarget, { target: Target.fromPartial({ name: 'shared', agent: 'a1' }) });
    const { token } = await admin.call(admin.agents, admin.agents.createAgentToken, { name: 'a1', ttl: undefined });
    agent = new TaskgateAgent({ server: address, token, name: 'a1', workDir: join(dir, 'agent'), isolate: false });
    agent.start();
    await agent.connected();
    for (const email of ['mallory@x', 'alice@x']) {
      await admin.call(admin.users, admin.users.createUser, { user: User.fromPartial({ email }) });
    }
  });

  after(async () => {
    for (const c of clients) c.close();
    admin?.close();
    await agent?.stop();
    await server?.terminate();
    rmSync(dir, { recursive: true, force: true });
  });

  async function clientOf(email: string): Promise<Api> {
    const { secret } = await admin.call(admin.users, admin.users.createToken, { user: email, name: 'abuse', ttl: undefined });
    const api = new Api({ server: address, token: secret });
    clients.push(api);
    return api;
  }

  it('refuses what is over the limits, stays within its memory bound, and runs the other user\'s task', async () => {
    const mallory = await clientOf('mallory@x');
    const alice = await clientOf('alice@x');
    const pid = server.child.pid!;
    // A task with 40 MB of output, for followers that never read.
    const { task: big } = await alice.call(alice.tasks, alice.tasks.createTask, { target: 'shared', script: 'head -c 40000000 /dev/zero | tr "\\0" x', message: '', type: '', timeoutSeconds: 0 });
    const done = alice.tasks.getTaskLogs({ id: big!.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, alice.metadata);
    for await (const { event } of done as AsyncIterable<GetTaskLogsResponse>) if (event?.$case === 'finished') break;
    // A running task for watchers to stay open on.
    const { task: sleeper } = await alice.call(alice.tasks, alice.tasks.createTask, { target: 'shared', script: 'sleep 200', message: '', type: '', timeoutSeconds: 0 });
    const before = rssMiB(pid);
    const refused = { list: 0, follow: 0, watch: 0, create: 0 };
    const count = (kind: keyof typeof refused) => (err: ServiceError) => {
      if (err.code === status.RESOURCE_EXHAUSTED) refused[kind]++;
      else if (err.code !== status.CANCELLED) throw err;
    };
    // 150 followers of the 40 MB output that never read a byte.
    const stalled: ClientReadableStream<GetTaskLogsResponse>[] = [];
    const followed = Array.from({ length: 150 }, async () => {
      const call = mallory.tasks.getTaskLogs({ id: big!.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, mallory.metadata);
      stalled.push(call);
      await new Promise<void>((resolve) => {
        call.once('data', () => {
          call.pause();
          resolve();
        });
        call.once('error', (err: ServiceError) => {
          count('follow')(err);
          resolve();
        });
      });
    });
    // 1,000 TCP connections that never send the HTTP/2 preface.
    const port = Number(/:(\d+)$/.exec(address)![1]);
    const sockets: Socket[] = Array.from({ length: 1000 }, () => connect(port, '127.0.0.1').on('error', () => undefined));
    // 2,000 ListTasks with status lists of length 1 to 2,000, 50 at a time.
    const lists = (async () => {
      for (let n = 1; n <= 2000; n += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            mallory
              .call(mallory.tasks, mallory.tasks.listTasks, { statuses: Array.from({ length: n + i }, (_, k) => (k % 9) + 1), target: '', pageSize: 1, pageToken: '', awaitingMyReview: false, createdByMe: false })
              .then(() => undefined, count('list')),
          ),
        );
      }
    })();
    // 1,000 watchers of one running task.
    const watching: Array<{ cancel(): void }> = [];
    const watchers = Array.from({ length: 1000 }, () => {
      const call = mallory.tasks.watchTask({ id: sleeper!.id }, mallory.metadata);
      watching.push(call);
      return new Promise<void>((resolve) => {
        call.on('data', () => undefined);
        call.once('end', resolve);
        call.once('error', (err: ServiceError) => {
          count('watch')(err);
          resolve();
        });
      });
    });
    // 2,000 CreateTask calls, 50 at a time.
    const creates = (async () => {
      for (let n = 0; n < 2000; n += 50) {
        await Promise.all(
          Array.from({ length: 50 }, () =>
            mallory.call(mallory.tasks, mallory.tasks.createTask, { target: 'shared', script: 'true', message: '', type: '', timeoutSeconds: 0 }).then(() => undefined, count('create')),
          ),
        );
      }
    })();
    // Meanwhile Alice's task runs.
    const started = Date.now();
    const { task: hers } = await alice.call(alice.tasks, alice.tasks.createTask, { target: 'shared', script: 'echo alive', message: '', type: '', timeoutSeconds: 0 });
    let output = '';
    let finished = null;
    for await (const { event } of alice.tasks.getTaskLogs({ id: hers!.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, alice.metadata) as AsyncIterable<GetTaskLogsResponse>) {
      if (event?.$case === 'chunk') output += Buffer.from(event.value.data).toString();
      else if (event?.$case === 'finished') finished = event.value;
    }
    const aliceMs = Date.now() - started;
    await Promise.all([lists, creates, ...followed]);
    const peak = rssMiB(pid);
    for (const s of [...stalled, ...watching]) s.cancel();
    for (const s of sockets) s.destroy();
    await Promise.all(watchers);
    await admin.call(admin.tasks, admin.tasks.killTask, { id: sleeper!.id, reason: 'test over' });
    console.log(
      `      server RSS ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB under abuse (+${(peak - before).toFixed(0)}, bound ${MAX_GROWTH_MIB}); refused: ${refused.list}/2000 ListTasks, ${refused.follow}/150 followers, ${refused.watch}/1000 watchers, ${refused.create}/2000 CreateTask; Alice's task took ${aliceMs} ms`,
    );
    expect([finished?.status, output]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'alive\r\n']);
    expect(peak - before, 'server RSS growth under abuse, MiB').to.be.below(MAX_GROWTH_MIB);
    // The default limits: 100 open streams and 100 calls/s (bursts of 200) per user.
    expect(refused.follow + refused.watch, 'streams over the per-user limit').to.be.at.least(1150 - 100);
    expect(refused.list + refused.create, 'calls over the rate').to.be.above(1000);
  });
});
