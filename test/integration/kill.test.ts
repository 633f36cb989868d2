/**
 * Kill, timeouts, the concurrency limit and the output limit, with real
 * agents and real process groups, on both stores.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus, type Task } from '../../gen/taskgate/v1/task.js';
import { untilOutput } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

/** Whether a process exists and has not exited (a zombie waiting to be reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Whether the process is gone within `ms` (a signalled process takes a moment to exit). */
async function goneWithin(pid: number, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    if (!alive(pid)) return true;
  }
  return !alive(pid);
}

for (const kind of STORE_KINDS) {
  describe(`kill, timeouts and limits: ${kind.name}`, function () {
    let h: Harness;
    let dir: string;

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location, { killGraceMs: 500, maxTasksPerAgent: 2, maxOutputBytes: 64 * 1024 });
      dir = mkdtempSync(join(tmpdir(), 'taskgate-kill-'));
      // Tasks run as users of their own when the tests run as root: let them write here.
      chmodSync(dir, 0o777);
    });

    afterEach(async () => {
      await h?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const kill = (id: string) => h.api.call(h.api.tasks, h.api.tasks.killTask, { id, reason: 'test' }).then((r) => r.task!);

    it('kills a task before it starts; it never runs, even when its agent comes later', async () => {
      await h.createTarget('t1', 'a1');
      const marker = join(dir, 'ran');
      const task = await h.createTask('t1', `touch ${marker}`);
      expect(task.status).to.equal(TaskStatus.TASK_STATUS_READY);
      const killed = await kill(task.id);
      expect([killed.status, killed.failureReason]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, `killed by user:admin@test before it ran: test`]);
      const agent = await h.startAgent('a1');
      const after = await h.createTask('t1', 'echo after');
      expect((await h.finished(after.id)).output.toString()).to.equal('after\r\n');
      expect(existsSync(marker)).to.equal(false);
      expect(agent.heldTasks).to.deep.equal([]);
      const again = await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: task.id, reason: '' }).catch((e: ServiceError) => e);
      expect((again as ServiceError).code).to.equal(status.FAILED_PRECONDITION);
    });

    it('kills a running task with its whole process group, background children included', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const pids = join(dir, 'pids');
      const task = await h.createTask('t1', `sleep 300 & echo "$$ $!" > ${pids}; echo started; wait`);
      await untilOutput(h.api, task.id, 'started');
      const [shell, child] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
      expect([alive(shell!), alive(child!)]).to.deep.equal([true, true]);
      const requested = await kill(task.id);
      expect(requested.status).to.be.oneOf([TaskStatus.TASK_STATUS_RUNNING, TaskStatus.TASK_STATUS_KILLED]);
      const { task: done, output } = await h.finished(task.id);
      expect([done.status, done.signal, done.failureReason]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, 'SIGTERM', 'killed on request (SIGTERM)']);
      expect(output.toString()).to.equal('started\r\n');
      expect([await goneWithin(shell!, 2000), await goneWithin(child!, 2000)]).to.deep.equal([true, true]);
      expect(done.events.map((e) => e.action)).to.include.members(['task.kill-requested', 'task.killed']);
    });

    it('sends SIGKILL after the grace period to a task that ignores SIGTERM', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const task = await h.createTask('t1', `trap 'echo got TERM' TERM; echo trap set; while true; do sleep 0.05; done`);
      await untilOutput(h.api, task.id, 'trap set');
      await kill(task.id);
      const { task: done, output } = await h.finished(task.id);
      expect([done.status, done.signal]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, 'SIGKILL']);
      expect(output.toString()).to.contain('got TERM');
    });

    it('ends a kill racing a normal exit in one honest status', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      for (let round = 0; round < 10; round++) {
        const task = await h.createTask('t1', 'echo quick');
        const killed = await kill(task.id).catch((e: ServiceError) => e);
        const { task: done, output } = await h.finished(task.id);
        if (done.status === TaskStatus.TASK_STATUS_SUCCESS) {
          // The process exited by itself: its output is whole and the event says a kill came too late (if it came at all).
          expect(output.toString()).to.equal('quick\r\n');
          expect(done.exitCode).to.equal(0);
        } else {
          expect(done.status, JSON.stringify(done.events)).to.equal(TaskStatus.TASK_STATUS_KILLED);
          expect(done.exitCode).to.equal(undefined);
        }
        const terminal = done.events.filter((e) => ['task.success', 'task.killed', 'task.failure'].includes(e.action));
        expect(terminal).to.have.length(1);
        if (killed instanceof Error) expect((killed as ServiceError).code).to.equal(status.FAILED_PRECONDITION);
      }
    });

    it('fails a task that runs past its timeout, from the target or the task', async () => {
      await h.startAgent('a1');
      await h.createTarget('slow', 'a1', 'bash', { timeoutSeconds: 1 });
      const byTarget = await h.createTask('slow', 'echo begin; sleep 30');
      const byTask = await h.createTask('slow', 'sleep 30', '', 2);
      const quick = await h.createTask('slow', 'echo in time');
      const [a, b, c] = await Promise.all([byTarget, byTask, quick].map((t) => h.finished(t.id)));
      expect([a!.task.status, a!.task.failureReason, a!.output.toString()]).to.deep.equal([
        TaskStatus.TASK_STATUS_FAILURE,
        'timeout: still running after 1 s; killed (SIGTERM)',
        'begin\r\n',
      ]);
      expect([b!.task.timeoutSeconds, b!.task.failureReason]).to.deep.equal([2, 'timeout: still running after 2 s; killed (SIGTERM)']);
      expect(b!.task.finished!.getTime() - b!.task.started!.getTime()).to.be.at.least(2000);
      expect(c!.task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    });

    it('runs at most the concurrency limit at once; the rest wait in order and all run', async () => {
      const agent = await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      let running = 0;
      let peak = 0;
      const startOrder: string[] = [];
      agent.on('task-start', (id: string) => {
        startOrder.push(id);
        peak = Math.max(peak, ++running);
      });
      agent.on('task-exit', () => running--);
      const tasks: Task[] = [];
      for (let i = 0; i < 7; i++) tasks.push(await h.createTask('t1', `sleep 0.2; echo ${i}`));
      const results = await Promise.all(tasks.map((t) => h.finished(t.id)));
      expect(results.map((r) => r.output.toString())).to.deep.equal(tasks.map((_, i) => `${i}\r\n`));
      expect(peak).to.equal(2);
      expect(startOrder).to.deep.equal(tasks.map((t) => t.id));
    });

    it('drains an agent: no new tasks, running ones finish, and one past the drain time ends killed by SIGTERM', async () => {
      const agent = await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const short = await h.createTask('t1', 'echo short; sleep 0.5; echo done');
      const long = await h.createTask('t1', 'echo long; sleep 60');
      await untilOutput(h.api, long.id, 'long');
      await untilOutput(h.api, short.id, 'short');
      const drained = agent.drain(2000, 300);
      // Tasks created while it drains wait for another agent.
      const later = await h.createTask('t1', 'echo later');
      await drained;
      const [a, b] = await Promise.all([short, long].map((t) => h.finished(t.id)));
      expect([a!.task.status, a!.output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'short\r\ndone\r\n']);
      expect([b!.task.status, b!.task.failureReason]).to.deep.equal([TaskStatus.TASK_STATUS_FAILURE, 'killed by signal SIGTERM']);
      expect((await h.getTask(later.id)).status).to.equal(TaskStatus.TASK_STATUS_READY);
      await h.startAgent('a1');
      expect((await h.finished(later.id)).output.toString()).to.equal('later\r\n');
    });

    it('keeps the first bytes up to the output limit, marks the cut, and still finishes the task', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      // 200,000 bytes of output against a 64 KiB limit, then an exit status.
      const task = await h.createTask('t1', "head -c 200000 /dev/zero | tr '\\000' x; exit 3");
      const { task: done, output } = await h.finished(task.id);
      const text = output.toString();
      const kept = text.slice(0, 65536);
      expect([kept.length, kept.replace(/x/g, '')]).to.deep.equal([65536, '']);
      expect(text.slice(65536)).to.equal('\r\n[taskgate: output truncated at 65536 bytes; the task keeps running]\r\n');
      expect([done.status, done.exitCode, done.outputDroppedBytes, done.outputBytes]).to.deep.equal([
        TaskStatus.TASK_STATUS_FAILURE,
        3,
        200000 - 65536,
        output.length,
      ]);
    });
  });
}
