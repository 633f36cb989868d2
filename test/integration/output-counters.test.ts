/**
 * A task's output counters against what is stored and served, on every
 * outcome that can be produced here, on both stores: success, failure,
 * timeout, killed while running, killed before it ran, output past the
 * limit, agent restarted (a SIGKILLed agent process comes back) and agent
 * lost (a cut longer than the lease). output_bytes must equal the bytes of
 * the stored chunks and of the log stream; output_dropped_bytes what the
 * agent dropped (in its exit, and in heartbeats while the task runs: a task
 * whose agent restarted or was lost keeps the last total reported).
 */
import { expect } from 'chai';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus, type Task } from '../../gen/taskgate/v1/task.js';
import { eventually } from '../helpers/eventually.js';
import { untilOutput, watchUntil } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { CliProcess } from '../helpers/processes.js';
import { STORE_KINDS } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

/** The server's output limit in these tests, in bytes. */
const MAX_OUTPUT_BYTES = 4096;

/** Bytes `seq 1 N` prints through a pty (each line ends "\r\n"). */
function seqBytes(n: number): number {
  let bytes = 0;
  for (let i = 1; i <= n; i++) bytes += String(i).length + 2;
  return bytes;
}

/** "begin\r\n" */
const BEGIN = 7;

for (const kind of STORE_KINDS) {
  describe(`output counters on every outcome: ${kind.name}`, function () {
    let h: Harness;
    let dir: string;
    const closers: Array<() => Promise<unknown>> = [];

    beforeEach(async function () {
      if (!(await kind.location())) this.skip();
      dir = mkdtempSync(join(tmpdir(), 'taskgate-counters-'));
      chmodSync(dir, 0o711); // agent work dirs inside: tasks run as users of their own
    });

    /** A server with these tests' limits; a short lease only where a test wants the agent lost. */
    async function harness(leaseMs = 60_000): Promise<void> {
      h = await Harness.start((await kind.location())!, { killGraceMs: 500, leaseMs, maxOutputBytes: MAX_OUTPUT_BYTES, heartbeatIntervalMs: 200 });
    }

    afterEach(async () => {
      for (const close of closers.splice(0).reverse()) await close();
      await h?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /**
     * Checks the ended task's counters against the store's chunks and the
     * log stream; returns the output served.
     */
    async function expectCountersMatch(id: string): Promise<{ task: Task; output: string }> {
      const { task, output } = await h.finished(id);
      const chunks = await h.store.readChunks(id, { afterSeq: -1 }, 10_000);
      const stored = chunks.reduce((sum, c) => sum + c.data.length, 0);
      expect([task.outputBytes, output.length], `${task.failureReason || 'success'}: counter, served, stored`).to.deep.equal([stored, stored]);
      expect((await h.getTask(id)).outputBytes).to.equal(stored);
      return { task, output: output.toString() };
    }

    it('success, failure and timeout', async () => {
      await harness();
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      const ok = await expectCountersMatch((await h.createTask('t1', 'seq 1 500')).id);
      expect([ok.task.status, ok.task.outputBytes]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, seqBytes(500)]);
      const failed = await expectCountersMatch((await h.createTask('t1', 'seq 1 100; exit 3')).id);
      expect([failed.task.status, failed.task.exitCode, failed.task.outputBytes]).to.deep.equal([TaskStatus.TASK_STATUS_FAILURE, 3, seqBytes(100)]);
      const timedOut = await expectCountersMatch((await h.createTask('t1', 'seq 1 50; sleep 30', '', 1)).id);
      expect([timedOut.task.failureReason.startsWith('timeout'), timedOut.task.outputBytes]).to.deep.equal([true, seqBytes(50)]);
    });

    it('killed while running, and killed before it ran', async () => {
      await harness();
      await h.createTarget('t1', 'a1');
      const early = await h.createTask('t1', 'seq 1 100');
      await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: early.id, reason: '' });
      const never = await expectCountersMatch(early.id);
      expect([never.task.status, never.task.outputBytes]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, 0]);
      await h.startAgent('a1');
      const running = await h.createTask('t1', 'seq 1 300; echo begin; sleep 30');
      await untilOutput(h.api, running.id, 'begin');
      await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: running.id, reason: '' });
      const killed = await expectCountersMatch(running.id);
      expect([killed.task.status, killed.task.outputBytes]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, seqBytes(300) + BEGIN]);
    });

    it('output past the limit: the stored bytes are counted, the rest reported dropped', async () => {
      await harness();
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1');
      // 10,000 bytes without newlines, so the pty adds none.
      const { task, output } = await expectCountersMatch((await h.createTask('t1', "head -c 10000 /dev/zero | tr '\\0' x")).id);
      const kept = output.indexOf('\r\n[taskgate: output truncated');
      expect([task.status, kept, task.outputDroppedBytes]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, MAX_OUTPUT_BYTES, 10_000 - MAX_OUTPUT_BYTES]);
    });

    /** 10,000 bytes without newlines, past the limit; then it waits. */
    const FLOOD = "head -c 10000 /dev/zero | tr '\\0' x; sleep 60";

    /** Until the server holds the dropped total the agent reported in a heartbeat. */
    async function untilDroppedReported(id: string): Promise<void> {
      await eventually('the dropped bytes reported while the task runs', async () => (await h.getTask(id)).outputDroppedBytes === 10_000 - MAX_OUTPUT_BYTES);
    }

    it('agent restarted while the task was running: its stored output is counted, and what it dropped', async () => {
      await harness();
      await h.createTarget('t1', 'a1');
      const token = await h.agentToken('a1');
      const agentArgs = ['agent', '--server', h.address, '--token', token, '--name', 'a1', '--work-dir', join(dir, 'agent'), '--log-level', 'warn'];
      const first = new CliProcess(agentArgs);
      closers.push(() => first.crash());
      const task = await h.createTask('t1', FLOOD);
      await untilDroppedReported(task.id);
      await first.crash();
      const second = new CliProcess(agentArgs);
      closers.push(() => second.crash());
      await watchUntil(h.api, task.id, (t) => t.status !== TaskStatus.TASK_STATUS_RUNNING);
      const { task: ended, output } = await expectCountersMatch(task.id);
      expect(output.indexOf('\r\n[taskgate: output truncated')).to.equal(MAX_OUTPUT_BYTES);
      expect([ended.failureReason, ended.outputDroppedBytes]).to.deep.equal(['agent restarted while the task was running', 10_000 - MAX_OUTPUT_BYTES]);
    });

    it('agent lost (cut off longer than the lease): its stored output is counted, and what it dropped', async () => {
      await harness(1500);
      const proxy = await TcpProxy.start(h.address);
      closers.push(() => proxy.close());
      await h.startAgent('a1', { server: proxy.address });
      await h.createTarget('t1', 'a1');
      const task = await h.createTask('t1', FLOOD);
      await untilDroppedReported(task.id);
      proxy.cut();
      await watchUntil(h.api, task.id, (t) => t.status !== TaskStatus.TASK_STATUS_RUNNING);
      const { task: ended, output } = await expectCountersMatch(task.id);
      expect(output.indexOf('\r\n[taskgate: output truncated')).to.equal(MAX_OUTPUT_BYTES);
      expect([ended.failureReason.startsWith('agent lost'), ended.outputDroppedBytes]).to.deep.equal([true, 10_000 - MAX_OUTPUT_BYTES]);
    });
  });
}
