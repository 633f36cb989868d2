/**
 * The agent's side of exit classification (agent/held-task.ts): the agent
 * reports what happened (exit status, signal, spawn error) and whether its
 * own timeout stopped the task; the server decides success, failure or
 * killed from that (test/unit/agent-session.test.ts). A timeout must be
 * reported as one only when the timeout stopped it.
 */
import FakeTimers from '@sinonjs/fake-timers';
import { expect } from 'chai';
import { HeldTask, type StopReason } from '../../agent/held-task.js';
import { TaskOutput } from '../../agent/task-output.js';
import { silentLogger } from '../../shared/logger.js';

function held(): HeldTask {
  const output = new TaskOutput('t1', { maxChunkBytes: 10, flushIntervalMs: 5, maxUnackedBytes: 100 }, () => true, () => undefined);
  return new HeldTask('t1', output, silentLogger());
}

describe('held task (agent side of exit classification)', () => {
  const reasons: Array<[StopReason | null, boolean]> = [
    [null, false],
    ['kill', false],
    ['drain', false],
    ['timeout', true],
  ];
  for (const [reason, timedOut] of reasons) {
    it(`reports timedOut=${timedOut} for a run stopped by ${reason ?? 'nothing'}, keeping what the process did`, () => {
      const task = held();
      task.stopReason = reason;
      expect(task.outcome({ exitCode: null, signal: 'SIGTERM', error: '' })).to.deep.equal({ exitCode: null, signal: 'SIGTERM', error: '', timedOut });
      expect(task.outcome({ exitCode: 2, signal: '', error: '' })).to.deep.equal({ exitCode: 2, signal: '', error: '', timedOut });
      task.transition('done');
    });
  }

  it('clears the timeout and the SIGKILL timer once the process is reaped', () => {
    const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const task = held();
      let fired = 0;
      task.timers.push(setTimeout(() => (fired += 1), 1000), setTimeout(() => (fired += 1), 5000));
      task.transition('running');
      task.transition('stopping');
      task.transition('reaping');
      expect(clock.countTimers()).to.equal(0);
      clock.tick(10_000);
      expect(fired).to.equal(0);
      task.transition('reporting');
      task.transition('done');
    } finally {
      clock.uninstall();
    }
  });

  it('refuses moves its state machine does not allow', () => {
    const task = held();
    expect(() => task.transition('reporting')).to.throw('illegal move preparing -> reporting');
    task.transition('done');
    expect(() => task.transition('running')).to.throw('illegal move done -> running');
  });
});
