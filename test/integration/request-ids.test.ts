/**
 * Request ids (AIP-155) against a real server on both stores: a repeat of
 * CreateTask, RunTask, ReviewTask or KillTask with the same id and request
 * acts once and answers with the task; the same id with another request is
 * ALREADY_EXISTS; the CLI sends one per invocation and, when the connection
 * drops after the server created the task and before the answer arrived,
 * tries again and gets the same task, which runs once.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ReviewMode, Target } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision, TaskStatus, type CreateTaskRequest, type Task } from '../../gen/taskgate/v1/task.js';
import type { Api } from '../../cli/client.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');
const APPROVE = ReviewDecision.REVIEW_DECISION_APPROVE;

/** The call's error, or null when it succeeded. */
async function outcome(p: Promise<unknown>): Promise<ServiceError | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return err as ServiceError;
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `taskgate` command against `server` with `token`. */
function taskgate(server: string, token: string, ...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, TASKGATE_SERVER: server, TASKGATE_TOKEN: token } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

for (const kind of STORE_KINDS) {
  describe(`request ids: ${kind.name}`, function () {
    let h: Harness;
    let dev: Api;
    let dir: string;
    const closers: Array<() => Promise<unknown>> = [];

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location);
      dev = await h.user('dev@x', ['dev']);
      dir = mkdtempSync(join(tmpdir(), 'taskgate-request-ids-'));
      chmodSync(dir, 0o755); // tasks run as users of their own and append to a marker here
    });

    afterEach(async () => {
      for (const close of closers.splice(0).reverse()) await close();
      await h?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function create(api: Api, fields: Partial<CreateTaskRequest>): Promise<Task> {
      const request = { target: 't', script: 'echo hi', message: '', type: '', timeoutSeconds: 0, requestId: '', ...fields };
      return api.call(api.tasks, api.tasks.createTask, request).then((r) => r.task!);
    }

    /** A file any task's uid may append to; its lines say how often something ran. */
    function marker(name: string): { path: string; lines: () => string[] } {
      const path = join(dir, name);
      writeFileSync(path, '');
      chmodSync(path, 0o666);
      return { path, lines: () => readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') };
    }

    it('CreateTask: a repeat returns the same task; another request with the id is ALREADY_EXISTS; other callers and no id are independent', async () => {
      await h.createTarget('t', 'nobody');
      const first = await create(dev, { script: 'echo once', requestId: 'req-create-0001' });
      const again = await create(dev, { script: 'echo once', requestId: 'req-create-0001' });
      expect([again.id, again.status]).to.deep.equal([first.id, TaskStatus.TASK_STATUS_READY]);
      for (const changed of [{ script: 'echo twice' }, { message: 'why' }, { timeoutSeconds: 5 }, { type: 'bash' }]) {
        const refused = await outcome(create(dev, { script: 'echo once', requestId: 'req-create-0001', ...changed }));
        expect([refused?.code, refused?.details], JSON.stringify(changed)).to.deep.equal([
          status.ALREADY_EXISTS,
          `request_id req-create-0001 was already used for another request (CreateTask of task ${first.id}); a new request needs a new request_id`,
        ]);
      }
      // Ids are per caller: the admin's same id is a request of its own.
      const admins = await create(h.api, { script: 'echo once', requestId: 'req-create-0001' });
      expect(admins.id).to.not.equal(first.id);
      // Without an id every call acts.
      const plain = [await create(dev, { script: 'echo plain' }), await create(dev, { script: 'echo plain' })];
      expect(plain[0]!.id).to.not.equal(plain[1]!.id);
      expect(await h.store.listTasks({ limit: 10 })).to.have.length(4);
      expect((await h.store.getTask(first.id))?.requestId).to.equal('req-create-0001');
    });

    it('CreateTask: a repeat answers even after the target stopped taking tasks; a malformed id is INVALID_ARGUMENT', async () => {
      await h.createTarget('t', 'nobody');
      const first = await create(dev, { requestId: '0f9e8d7c-6b5a-4321-8fed-cba987654321' });
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 't', active: false }), updateMask: ['active'] });
      expect((await create(dev, { requestId: '0f9e8d7c-6b5a-4321-8fed-cba987654321' })).id).to.equal(first.id);
      for (const bad of ['short', 'x'.repeat(65), 'has space 123', 'slash/0123456', 'üñí-0123456']) {
        const refused = await outcome(create(dev, { requestId: bad }));
        expect(refused?.code, bad).to.equal(status.INVALID_ARGUMENT);
        expect(refused?.details).to.match(/^request_id must be 8-64 characters of A-Z, a-z, 0-9, '-' and '_'/);
      }
    });

    it('CreateTask: concurrent repeats make one task and all answer with it', async () => {
      await h.createTarget('t', 'nobody');
      const answers = await Promise.all(Array.from({ length: 8 }, () => create(dev, { script: 'echo race', requestId: 'req-race-000001' })));
      const ids = new Set(answers.map((t) => t.id));
      expect(ids.size).to.equal(1);
      const stored = await h.store.listTasks({ limit: 10 });
      expect(stored.map((t) => [t.id, t.status, t.events.length])).to.deep.equal([[answers[0]!.id, 'ready', 2]]);
    });

    it('CreateTask: concurrent repeats for a connected, idle agent make one task, which runs once, and the agent takes the next', async () => {
      await h.startAgent('a1');
      await h.createTarget('t', 'a1');
      // A task run first leaves the session idle, so new tasks are claimed as they are inserted (and a repeat's claim let go).
      expect((await h.finished((await create(dev, { script: 'echo warm' })).id)).task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const ran = marker('create');
      const answers = await Promise.all(Array.from({ length: 8 }, () => create(dev, { script: `echo ran >> ${ran.path}`, requestId: 'req-race-live01' })));
      expect(new Set(answers.map((t) => t.id)).size).to.equal(1);
      expect((await h.finished(answers[0]!.id)).task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const next = await create(dev, { script: 'echo next' });
      expect((await h.finished(next.id)).output.toString()).to.equal('next\r\n');
      expect(ran.lines()).to.deep.equal(['ran']);
      expect(await h.store.listTasks({ limit: 10 })).to.have.length(3);
    });

    it('RunTask: a repeat after the task ran returns it as it is instead of FAILED_PRECONDITION, and runs nothing again', async () => {
      await h.startAgent('a1');
      await h.createTarget('t', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
      const ops = await h.user('ops@x', ['ops']);
      const ran = marker('run');
      const task = await create(dev, { script: `echo ran >> ${ran.path}` });
      await ops.call(ops.tasks, ops.tasks.reviewTask, { id: task.id, decision: APPROVE, group: '', comment: '' });
      const run = (requestId: string) => dev.call(dev.tasks, dev.tasks.runTask, { id: task.id, requestId }).then((r) => r.task!);
      expect((await run('req-run-000001')).status).to.equal(TaskStatus.TASK_STATUS_READY);
      expect((await h.finished(task.id)).task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect((await run('req-run-000001')).status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect((await outcome(run('req-run-000002')))?.details).to.equal(`task ${task.id} is success; only an approved task can be run`);
      expect(ran.lines()).to.deep.equal(['ran']);
      // The id is bound to running this task: killing it with the id is another request.
      const kill = await outcome(dev.call(dev.tasks, dev.tasks.killTask, { id: task.id, reason: '', requestId: 'req-run-000001' }));
      expect([kill?.code, kill?.details]).to.deep.equal([
        status.ALREADY_EXISTS,
        `request_id req-run-000001 was already used for another request (RunTask of task ${task.id}); a new request needs a new request_id`,
      ]);
    });

    it('ReviewTask: a repeat returns the task as the first call left it instead of an error, and decides nothing again', async () => {
      await h.createTarget('t', 'nobody', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba', 'sre'] });
      const dba = await h.user('dba@x', ['dba']);
      const both = await h.user('both@x', ['dba', 'sre']);
      const review = (api: Api, id: string, requestId: string, decision = APPROVE, group = '') =>
        api.call(api.tasks, api.tasks.reviewTask, { id, decision, group, comment: 'ok', requestId }).then((r) => r.task!);
      const decisions = (t: Task) => t.events.filter((e) => e.action === 'task.review').length;
      // dba approved; "both" approves without naming a group: sre, the one left.
      const task = await create(dev, {});
      await review(dba, task.id, 'req-review-001', APPROVE, 'dba');
      const approved = await review(both, task.id, 'req-review-002');
      expect([approved.status, approved.review.map((r) => r.reviewer)]).to.deep.equal([TaskStatus.TASK_STATUS_APPROVED, ['user:dba@x', 'user:both@x']]);
      const repeated = await review(both, task.id, 'req-review-002');
      expect([repeated.status, decisions(repeated)]).to.deep.equal([TaskStatus.TASK_STATUS_APPROVED, 2]);
      // The same call as a new request: no group of theirs is pending any more.
      expect((await outcome(review(both, task.id, 'req-review-003')))?.details).to.equal(
        'you are in dba and sre, which both review this task; say which group you act for',
      );
      // A rejection repeated: the rejected task, not FAILED_PRECONDITION.
      const other = await create(dev, { script: 'echo other' });
      const reject = () => review(dba, other.id, 'req-review-004', ReviewDecision.REVIEW_DECISION_REJECT, 'dba');
      expect((await reject()).status).to.equal(TaskStatus.TASK_STATUS_REJECTED);
      const again = await reject();
      expect([again.status, decisions(again)]).to.deep.equal([TaskStatus.TASK_STATUS_REJECTED, 1]);
      const fresh = await outcome(review(dba, other.id, 'req-review-005', ReviewDecision.REVIEW_DECISION_REJECT, 'dba'));
      expect([fresh?.code, fresh?.details]).to.deep.equal([status.FAILED_PRECONDITION, `task ${other.id} is rejected; it can no longer be reviewed`]);
    });

    it('KillTask: a repeat returns the killed task instead of FAILED_PRECONDITION; a new kill is refused as before', async () => {
      await h.createTarget('t', 'nobody');
      const task = await create(dev, {});
      const kill = (requestId: string, reason = 'stop') => dev.call(dev.tasks, dev.tasks.killTask, { id: task.id, reason, requestId }).then((r) => r.task!);
      const killed = await kill('req-kill-000001');
      expect(killed.status).to.equal(TaskStatus.TASK_STATUS_KILLED);
      const repeated = await kill('req-kill-000001');
      expect([repeated.status, repeated.events.length]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, killed.events.length]);
      expect((await outcome(kill('req-kill-000002')))?.details).to.equal(`task ${task.id} is killed; there is nothing to kill`);
      expect((await outcome(kill('req-kill-000001', 'another reason')))?.code).to.equal(status.ALREADY_EXISTS);
    });

    it('CLI: one request id per invocation, --request-id to repeat one; the same id with other arguments fails', async () => {
      await h.createTarget('t', 'nobody');
      const token = (dev as Api & { token: string }).token;
      const args = ['tasks', 'create', '-t', 't', '-s', 'echo cli'];
      const [a, b] = [await taskgate(h.address, token, ...args), await taskgate(h.address, token, ...args)];
      expect(a.stdout.trim()).to.not.equal(b.stdout.trim());
      const c = await taskgate(h.address, token, ...args, '--request-id', 'cli-req-00001');
      const d = await taskgate(h.address, token, ...args, '--request-id', 'cli-req-00001');
      expect([c.code, d.code, d.stdout]).to.deep.equal([0, 0, c.stdout]);
      const e = await taskgate(h.address, token, 'tasks', 'create', '-t', 't', '-s', 'echo other', '--request-id', 'cli-req-00001');
      expect([e.code, e.stdout]).to.deep.equal([1, '']);
      expect(e.stderr).to.match(/^taskgate: request_id cli-req-00001 was already used for another request \(CreateTask of task \S+\); a new request needs a new request_id \(ALREADY_EXISTS\)\n$/);
      const stored = await h.store.listTasks({ limit: 10 });
      expect(stored).to.have.length(3);
      // The CLI's own ids are random UUIDs.
      expect(stored.map((t) => t.requestId).filter((id) => id !== 'cli-req-00001')).to.satisfy((ids: string[]) =>
        ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)),
      );
      const kill = await taskgate(h.address, token, 'tasks', 'kill', c.stdout.trim(), '--request-id', 'cli-kill-0001');
      const killAgain = await taskgate(h.address, token, 'tasks', 'kill', c.stdout.trim(), '--request-id', 'cli-kill-0001');
      expect([kill.code, killAgain.code, killAgain.stdout]).to.deep.equal([0, 0, kill.stdout]);
    });

    it('the connection drops after the server created the task, before the answer: the CLI tries again and gets the one task, which runs once', async () => {
      await h.startAgent('a1');
      await h.createTarget('t', 'a1');
      const ran = marker('create');
      const proxy = await TcpProxy.start(h.address);
      closers.push(() => proxy.close());
      const script = `echo ran >> ${ran.path}`;
      const answerHeld = proxy.holdAnswerAfter(script);
      const cli = taskgate(proxy.address, h.adminToken, 'tasks', 'create', '-t', 't', '-s', script);
      await answerHeld;
      // The request reached the server; wait until it holds the task, then drop the link unanswered.
      let stored = await h.store.listTasks({ limit: 10 });
      while (stored.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 10)); // a condition polled, not a sleep to wait out
        stored = await h.store.listTasks({ limit: 10 });
      }
      proxy.cut();
      proxy.restore();
      const { code, stdout, stderr } = await cli;
      expect(code, stderr).to.equal(0);
      expect(stdout).to.equal(`${stored[0]!.id}\n`);
      // Said once, on stderr, that it tried again and why that is safe.
      expect(stderr).to.match(
        /^taskgate: creating the task: Connection dropped \(UNAVAILABLE\); trying again with the same request id [0-9a-f-]{36}, so it happens at most once\n$/,
      );
      const { task } = await h.finished(stored[0]!.id);
      expect(task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect((await h.store.listTasks({ limit: 10 })).map((t) => t.id)).to.deep.equal([task.id]);
      expect(ran.lines()).to.deep.equal(['ran']);
    });
  });
}
