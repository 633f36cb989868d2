/**
 * End to end through real parts: the gRPC server on 127.0.0.1:0 over each
 * store, real agents over the bidirectional stream, real ptys.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { MAX_SCRIPT_BYTES } from '../../shared/limits.js';
import { AgentError } from '../../agent/agent.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

async function rejection(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail');
}

for (const kind of STORE_KINDS) {
  describe(`end to end: ${kind.name}`, function () {
    let h: Harness;
    /** Where tests and tasks hand each other marker files: tasks run as users of their own. */
    let markers: string;

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location);
      markers = mkdtempSync(join(tmpdir(), 'taskgate-e2e-'));
      chmodSync(markers, 0o777);
    });

    afterEach(async () => {
      await h?.close();
      if (markers) rmSync(markers, { recursive: true, force: true });
    });

    it('runs a task on its agent and returns its output and exit status', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      // Once the session has heard from its agent and run its first claim
      // pass, an idle agent's new task is stored claimed by it in the write
      // that creates it (created, ready and running events) on the embedded
      // store; on MongoDB it is stored ready and then claimed
      // (Store.claimsAtCreation).
      await h.finished((await h.createTask('t1', 'true')).id);
      const created = await h.createTask('t1', 'echo hello; echo "$TASKGATE_TASK_ID $TASKGATE_TARGET"; exit 3');
      expect(created.status).to.equal(kind.name === 'sqlite' ? TaskStatus.TASK_STATUS_RUNNING : TaskStatus.TASK_STATUS_READY);
      const { task, output } = await h.finished(created.id);
      expect(output.toString()).to.equal(`hello\r\n${created.id} t1\r\n`);
      expect([task.status, task.exitCode, task.failureReason, task.agent, task.type]).to.deep.equal([
        TaskStatus.TASK_STATUS_FAILURE,
        3,
        'exited with status 3',
        'a1',
        'bash',
      ]);
      expect(task.outputBytes).to.equal(output.length);
      expect(task.events.map((e) => e.to)).to.deep.equal([
        TaskStatus.TASK_STATUS_CREATED,
        TaskStatus.TASK_STATUS_READY,
        TaskStatus.TASK_STATUS_RUNNING,
        TaskStatus.TASK_STATUS_FAILURE,
      ]);
      expect(task.started!.getTime()).to.be.at.least(task.created!.getTime());
      expect(task.finished!.getTime()).to.be.at.least(task.started!.getTime());
    });

    it('honours a type override and each interpreter', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1', 'sh', { allowTypeOverride: true });
      const py = await h.createTask('t1', 'print(6 * 7)', 'python');
      const node = await h.createTask('t1', 'process.stdout.write(String([1, 2].length) + "\\n")', 'node');
      const sh = await h.createTask('t1', 'echo $((1 + 1))');
      const results = await Promise.all([py, node, sh].map((t) => h.finished(t.id)));
      expect(results.map((r) => [r.task.type, r.output.toString(), r.task.status])).to.deep.equal([
        ['python', '42\r\n', TaskStatus.TASK_STATUS_SUCCESS],
        ['node', '2\r\n', TaskStatus.TASK_STATUS_SUCCESS],
        ['sh', '2\r\n', TaskStatus.TASK_STATUS_SUCCESS],
      ]);
    });

    it('queues tasks while their agent is away and pushes them oldest first when it connects', async () => {
      await h.createTarget('t1', 'late');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await h.createTask('t1', `echo ${i}`)).id);
      for (const id of ids) expect((await h.getTask(id)).status).to.equal(TaskStatus.TASK_STATUS_READY);
      await h.startAgent('late');
      const results = await Promise.all(ids.map((id) => h.finished(id)));
      expect(results.map((r) => r.output.toString())).to.deep.equal(['0\r\n', '1\r\n', '2\r\n']);
      const runningAt = results.map((r) => r.task.events.find((e) => e.to === TaskStatus.TASK_STATUS_RUNNING)!.time!.getTime());
      expect([...runningAt].sort((a, b) => a - b)).to.deep.equal(runningAt);
    });

    it('lets a follower attached mid-run see every byte once, in order, then replay from any offset', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const marker = join(markers, 'mid');
      const t = await h.createTask(
        't1',
        `echo first; while [ ! -e ${marker} ]; do sleep 0.02; done; rm -f ${marker}; for i in $(seq 1 50); do echo "line $i"; done`,
      );
      // Follower A from the start; once it has seen "first" the task is
      // running and blocked, and follower B attaches mid-run.
      const callA = h.api.tasks.getTaskLogs({ id: t.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
      let a = '';
      let followerB: ReturnType<Harness['logs']> | undefined;
      for await (const message of callA) {
        const event = (message as { event?: { $case: string; value: { data?: Uint8Array } } }).event;
        if (event?.$case !== 'chunk') continue;
        a += Buffer.from(event.value.data!).toString();
        if (!followerB && a === 'first\r\n') {
          followerB = h.logs(t.id, { follow: true });
          const { writeFileSync } = await import('node:fs');
          writeFileSync(marker, '');
        }
      }
      const expected = ['first', ...Array.from({ length: 50 }, (_, i) => `line ${i + 1}`)].map((l) => `${l}\r\n`).join('');
      expect(a).to.equal(expected);
      const b = await followerB!;
      expect(b.output.toString()).to.equal(expected);
      expect(b.finished?.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const replay = await h.logs(t.id, { follow: false });
      expect(replay.output.toString()).to.equal(expected);
      const fromOffset = await h.logs(t.id, { follow: false, offset: 9 });
      expect(fromOffset.output.toString()).to.equal(expected.slice(9));
    });

    it('streams output while the task runs, before it ends', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const marker = join(markers, 'released');
      // The script prints, then waits until the test has seen that output.
      const t = await h.createTask('t1', `echo waiting; while [ ! -e ${marker} ]; do sleep 0.05; done; echo released; rm -f ${marker}`);
      const call = h.api.tasks.getTaskLogs({ id: t.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
      let seen = '';
      for await (const message of call) {
        const event = (message as { event?: { $case: string; value: { data?: Uint8Array } } }).event;
        if (event?.$case !== 'chunk') continue;
        seen += Buffer.from(event.value.data!).toString();
        if (seen === 'waiting\r\n') {
          expect((await h.getTask(t.id)).status).to.equal(TaskStatus.TASK_STATUS_RUNNING);
          const { writeFileSync } = await import('node:fs');
          writeFileSync(marker, '');
        }
      }
      expect(seen).to.equal('waiting\r\nreleased\r\n');
    });

    it('keeps tasks and logs across a server restart', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const t = await h.createTask('t1', 'echo persisted');
      await h.finished(t.id);
      await h.restart();
      const again = await h.finished(t.id);
      expect([again.task.status, again.output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'persisted\r\n']);
      // The agent reconnects by itself and keeps running new tasks.
      const next = await h.createTask('t1', 'echo after restart');
      expect((await h.finished(next.id)).output.toString()).to.equal('after restart\r\n');
    });

    it('finishes a task with complete output when the server restarts while it runs', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const marker = join(markers, 'restart');
      const t = await h.createTask('t1', `echo before; while [ ! -e ${marker} ]; do sleep 0.02; done; rm -f ${marker}; echo after`);
      const call = h.api.tasks.getTaskLogs({ id: t.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
      for await (const message of call) {
        const event = (message as { event?: { $case: string } }).event;
        if (event?.$case === 'chunk') break;
      }
      call.cancel();
      await h.restart();
      const { writeFileSync } = await import('node:fs');
      writeFileSync(marker, '');
      const { task, output } = await h.finished(t.id);
      expect([task.status, output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'before\r\nafter\r\n']);
      expect(task.events.filter((e) => e.to === TaskStatus.TASK_STATUS_RUNNING)).to.have.length(1);
    });

    it('lists tasks with filters and page tokens', async () => {
      await h.createTarget('t1', 'nobody');
      await h.createTarget('t2', 'nobody');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await h.createTask(i % 2 ? 't2' : 't1', 'true')).id);
      const list = (req: { target?: string; pageToken?: string; pageSize?: number; statuses?: TaskStatus[] }) =>
        h.api.call(h.api.tasks, h.api.tasks.listTasks, { statuses: [], target: '', pageSize: 0, pageToken: '', awaitingMyReview: false, createdByMe: false, ...req });
      const p1 = await list({ pageSize: 2 });
      const p2 = await list({ pageSize: 2, pageToken: p1.nextPageToken });
      const p3 = await list({ pageSize: 2, pageToken: p2.nextPageToken });
      expect([...p1.tasks, ...p2.tasks, ...p3.tasks].map((t) => t.id)).to.deep.equal([...ids].reverse());
      expect(p3.nextPageToken).to.equal('');
      expect((await list({ target: 't2' })).tasks.map((t) => t.id)).to.deep.equal([ids[3], ids[1]]);
      expect((await list({ statuses: [TaskStatus.TASK_STATUS_SUCCESS] })).tasks).to.deep.equal([]);
      expect((await rejection(list({ pageToken: '!!' }))).code).to.equal(status.INVALID_ARGUMENT);
    });

    it('answers bad input with precise statuses and keeps serving', async () => {
      await h.createTarget('t1', 'a1');
      const create = (req: { target?: string; script?: string; type?: string }) =>
        h.api.call(h.api.tasks, h.api.tasks.createTask, { target: 't1', script: 'echo', message: '', type: '', timeoutSeconds: 0, ...req });
      const cases: Array<[() => Promise<unknown>, status, RegExp]> = [
        [() => create({ target: 'missing' }), status.NOT_FOUND, /target "missing" not found/],
        [() => create({ script: '   ' }), status.INVALID_ARGUMENT, /script must not be empty/],
        [() => create({ type: 'cobol' }), status.INVALID_ARGUMENT, /type "cobol" is not supported/],
        [() => create({ type: 'python' }), status.PERMISSION_DENIED, /runs bash only; it does not allow type override/],
        [() => create({ script: 'x'.repeat(MAX_SCRIPT_BYTES + 1) }), status.INVALID_ARGUMENT, /limit is 1048576 bytes/],
        [() => h.getTask('nope'), status.NOT_FOUND, /task nope not found/],
        [() => h.createTarget('Bad Name', 'a1'), status.INVALID_ARGUMENT, /target.name "Bad Name" is invalid/],
        [() => h.createTarget('t1', 'a1'), status.ALREADY_EXISTS, /already exists/],
      ];
      for (const [call, code, message] of cases) {
        const err = await rejection(call());
        expect(status[err.code], err.details).to.equal(status[code]);
        expect(err.details).to.match(message);
      }
      expect((await h.createTask('t1', 'true')).status).to.equal(TaskStatus.TASK_STATUS_READY);
    });

    it('refuses missing, unknown and wrong-kind tokens', async () => {
      await h.createTarget('t1', 'a1');
      const agentToken = await h.agentToken('a1');
      const noToken = h.client('placeholder');
      noToken.metadata.remove('authorization');
      const wrong = h.client('tg_admin_wrong');
      const asAgent = h.client(agentToken);
      const cases: Array<[() => Promise<unknown>, status]> = [
        [() => noToken.call(noToken.tasks, noToken.tasks.getTask, { id: 'x' }), status.UNAUTHENTICATED],
        [() => wrong.call(wrong.tasks, wrong.tasks.getTask, { id: 'x' }), status.UNAUTHENTICATED],
        [() => asAgent.call(asAgent.tasks, asAgent.tasks.createTask, { target: 't1', script: 'id', message: '', type: '', timeoutSeconds: 0 }), status.PERMISSION_DENIED],
        [() => asAgent.call(asAgent.targets, asAgent.targets.listTargets, { pageSize: 0, pageToken: '' }), status.PERMISSION_DENIED],
      ];
      for (const [call, code] of cases) expect(status[(await rejection(call())).code]).to.equal(status[code]);
      for (const client of [noToken, wrong, asAgent]) client.close();
      // An admin token cannot open an agent stream: the agent fails, and says why.
      const failed = (await h.startAgent('a1', { token: h.adminToken }).then(() => null, (err: unknown) => err)) as AgentError;
      expect(failed).to.be.instanceOf(AgentError);
      expect(status[failed.status!.code]).to.equal('PERMISSION_DENIED');
      expect(h.agents[h.agents.length - 1]!.lifecycle).to.equal('failed');
    });

    it('refuses an agent token used for another agent name', async () => {
      const token = await h.agentToken('a1');
      const failed = (await h.startAgent('a2', { token }).then(() => null, (err: unknown) => err)) as AgentError;
      const err = failed.status!;
      expect([status[err.code], err.details]).to.deep.equal(['PERMISSION_DENIED', 'this token belongs to agent "a1", not "a2"']);
      expect(failed.message).to.equal('the server refused this agent: this token belongs to agent "a1", not "a2"');
    });

    it('refuses a second agent process with the same name', async () => {
      await h.startAgent('a1');
      const token = await h.agentToken('a1');
      const refused = new Promise<string>((resolve) => {
        // It never connects; it fails "stopped before it connected" when the harness closes.
        h.startAgent('a1', { token }).catch(() => undefined);
        h.agents[h.agents.length - 1]?.on('state', (state: string) => state === 'backoff' && resolve(state));
      });
      expect(await refused).to.equal('backoff');
      const list = await h.api.call(h.api.agents, h.api.agents.listAgents, {});
      expect(list.agents.map((a) => [a.name, a.connected])).to.deep.equal([['a1', true]]);
    });

    it('deletes only targets without unfinished tasks', async () => {
      await h.createTarget('t1', 'away');
      const t = await h.createTask('t1', 'true');
      const del = () => h.api.call(h.api.targets, h.api.targets.deleteTarget, { name: 't1' });
      expect(status[(await rejection(del())).code]).to.equal('FAILED_PRECONDITION');
      await h.startAgent('away');
      await h.finished(t.id);
      await del();
      expect(status[(await rejection(del())).code]).to.equal('NOT_FOUND');
    });
  });
}
