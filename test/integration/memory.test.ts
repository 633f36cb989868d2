/**
 * Bounded memory under a flood: a task printing 200 MB while a log follower
 * reads slowly, and while the agent's stream stalls. The agent's buffered
 * output must stay under its unacknowledged-bytes bound (the pty is paused
 * instead), and the process must not grow by anything like the output size
 * (the server's log stream waits for the slow reader instead of queueing).
 */
import { expect } from 'chai';
import type { GetTaskLogsResponse } from '../../gen/taskgate/v1/task.js';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const MiB = 1024 * 1024;
const TOTAL = 200 * 1000 * 1000;

describe('memory under a 200 MB flood (sqlite)', function () {
  this.timeout(300_000);
  let h: Harness;
  let proxy: TcpProxy | undefined;

  before(async () => {
    h = await Harness.start((await STORE_KINDS[0]!.location())!);
  });

  after(async () => {
    await proxy?.close();
    await h?.close();
  });

  it('keeps agent buffers bounded and the process from growing with a slow follower and a stalled stream', async () => {
    proxy = await TcpProxy.start(h.address);
    const agent = await h.startAgent('a1', { server: proxy.address, maxUnackedBytes: 8 * MiB });
    await h.createTarget('t1', 'a1');
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let maxAgentBuffered = 0;
    let maxRss = 0;
    const sampler = setInterval(() => {
      maxAgentBuffered = Math.max(maxAgentBuffered, agent.bufferedBytes);
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
    }, 25);
    try {
      const task = await h.createTask('t1', `head -c ${TOTAL} /dev/zero | tr '\\000' x`);
      // A follower that reads 1 MiB, then stops reading for a while, again and again.
      let read = 0;
      let stalls = 0;
      const followed = new Promise<void>((resolve, reject) => {
        const call = h.api.tasks.getTaskLogs({ id: task.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
        let sinceStall = 0;
        call.on('data', ({ event }: GetTaskLogsResponse) => {
          if (event?.$case !== 'chunk') return;
          read += event.value.data.length;
          sinceStall += event.value.data.length;
          if (sinceStall > 8 * MiB && stalls < 10) {
            sinceStall = 0;
            stalls++;
            call.pause();
            setTimeout(() => call.resume(), 300);
          }
        });
        call.on('end', resolve);
        call.on('error', reject);
      });
      // Stall the agent's stream twice mid-flood (the link drops; output waits in the agent).
      const stallLink = async (): Promise<void> => {
        for (let i = 0; i < 2; i++) {
          await new Promise((r) => setTimeout(r, 1500));
          proxy!.cut();
          await new Promise((r) => setTimeout(r, 500));
          proxy!.restore();
        }
      };
      await Promise.all([followed, stallLink()]);
      const done = await h.getTask(task.id);
      expect([done.status, done.outputBytes, read]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, TOTAL, TOTAL]);
      expect(stalls).to.be.greaterThan(0);
    } finally {
      clearInterval(sampler);
    }
    const growth = maxRss - rssBefore;
    console.log(`      agent buffered at most ${(maxAgentBuffered / MiB).toFixed(1)} MiB; process grew by at most ${(growth / MiB).toFixed(0)} MiB for 200 MB of output`);
    // The bound plus one batch of pty output in flight.
    expect(maxAgentBuffered).to.be.at.most(8 * MiB + 2 * 64 * 1024 + 64 * 1024);
    // Buffering the output for the slow reader would grow the process by more
    // than TOTAL; garbage awaiting collection accounts for tens of MiB.
    expect(growth).to.be.below(TOTAL * 0.75);
  });
});
