import FakeTimers from '@sinonjs/fake-timers';
import { expect } from 'chai';
import type { ConnectRequest, TaskOutput as OutputMessage } from '../../gen/taskgate/v1/agent.js';
import { TaskOutput } from '../../agent/task-output.js';

function recorder(connected = true): { sent: ConnectRequest[]; send: (m: ConnectRequest) => boolean; outputs(): OutputMessage[] } {
  const sent: ConnectRequest[] = [];
  return {
    sent,
    send: (m) => {
      if (connected) sent.push(m);
      return connected;
    },
    outputs: () => sent.flatMap((m) => (m.message?.$case === 'output' ? [m.message.value] : [])),
  };
}

describe('TaskOutput (agent output batching)', () => {
  const options = { maxChunkBytes: 10, flushIntervalMs: 5, maxUnackedBytes: 25 };

  it('sends a chunk as soon as maxChunkBytes are buffered, splitting larger writes', () => {
    const r = recorder();
    const out = new TaskOutput('t', options, r.send, () => undefined);
    out.push(Buffer.from('0123456789abcdefghijkl'));
    const chunks = r.outputs();
    expect(chunks.map((c) => [c.seq, c.offset, Buffer.from(c.data).toString()])).to.deep.equal([
      [0, 0, '0123456789'],
      [1, 10, 'abcdefghij'],
      [2, 20, 'kl'],
    ]);
    out.dispose();
  });

  it('sends a small write after flushIntervalMs, not before', () => {
    const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const r = recorder();
      const out = new TaskOutput('t', { ...options, maxChunkBytes: 1000, flushIntervalMs: 30 }, r.send, () => undefined);
      out.push(Buffer.from('hi'));
      clock.tick(29);
      expect(r.outputs(), 'sent before flushIntervalMs').to.deep.equal([]);
      clock.tick(1);
      expect(r.outputs().map((c) => Buffer.from(c.data).toString())).to.deep.equal(['hi']);
      out.dispose();
      expect(clock.countTimers(), 'timers left').to.equal(0);
    } finally {
      clock.uninstall();
    }
  });

  it('ends with an exit carrying the chunk count and byte total', () => {
    const r = recorder();
    const out = new TaskOutput('t', options, r.send, () => undefined);
    out.push(Buffer.from('abc'));
    out.finish({ exitCode: 0, signal: '', error: '' });
    const last = r.sent[r.sent.length - 1]!.message;
    expect(last?.$case).to.equal('exit');
    if (last?.$case === 'exit') expect([last.value.chunks, last.value.totalBytes, last.value.exitCode]).to.deep.equal([1, 3, 0]);
  });

  it('pauses the producer past maxUnackedBytes and resumes once acknowledged', () => {
    const r = recorder();
    const pressure: boolean[] = [];
    const out = new TaskOutput('t', options, r.send, (p) => pressure.push(p));
    out.push(Buffer.alloc(30, 1));
    expect(pressure).to.deep.equal([true]);
    out.ack(0);
    expect(pressure, 'still 20 bytes unacknowledged').to.deep.equal([true]);
    out.ack(1);
    expect(pressure).to.deep.equal([true, false]);
  });

  it('resends exactly the unacknowledged chunks and the exit after a reconnect', () => {
    let connected = false;
    const sent: ConnectRequest[] = [];
    const out = new TaskOutput('t', options, (m) => {
      if (connected) sent.push(m);
      return connected;
    }, () => undefined);
    out.push(Buffer.from('0123456789abcdefghij'));
    out.finish({ exitCode: 3, signal: '', error: '' });
    expect(sent).to.have.length(0);
    out.ack(0);
    connected = true;
    out.resend();
    expect(sent.map((m) => m.message?.$case)).to.deep.equal(['output', 'exit']);
    const first = sent[0]!.message;
    if (first?.$case === 'output') expect(first.value.seq).to.equal(1);
  });
});
