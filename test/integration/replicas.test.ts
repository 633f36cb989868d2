/**
 * Two server replicas on one MongoDB: a task created or killed through one
 * reaches the agent whose stream the other holds (FerretDB has no change
 * streams, so this is the sweeper's poll; docs/scaling.md).
 */
import { expect } from 'chai';
import { Target } from '../../gen/taskgate/v1/target.js';
import { TaskStatus, type GetTaskLogsResponse } from '../../gen/taskgate/v1/task.js';
import { TaskgateAgent } from '../../agent/agent.js';
import { Api } from '../../cli/client.js';
import { TaskgateServer } from '../../server/server.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

describe('server replicas on one MongoDB', function () {
  let h: Harness;
  let b: TaskgateServer | undefined;
  let agent: TaskgateAgent | undefined;

  before(async function () {
    const location = await STORE_KINDS.find((k) => k.name === 'mongodb')!.location();
    if (!location) this.skip();
    h = await Harness.start(location, { pollMs: 200 });
    b = await TaskgateServer.start({ ...location.options, listen: '127.0.0.1:0', pollMs: 200 });
    await h.createTarget('t1', 'a1');
    agent = new TaskgateAgent({ server: `127.0.0.1:${b.port}`, token: await h.agentToken('a1'), name: 'a1' });
    await new Promise<void>((resolve) => {
      agent!.on('state', (s) => s === 'connected' && resolve());
      agent!.start();
    });
  });

  after(async () => {
    await agent?.stop();
    await b?.stop();
    await h?.close();
  });

  it('runs a task created through replica A on an agent connected to replica B', async () => {
    expect(h.server.connectedAgents()).to.deep.equal([]);
    expect(b!.connectedAgents()).to.deep.equal(['a1']);
    const task = await h.createTask('t1', 'echo via B');
    const { task: done, output } = await h.finished(task.id);
    expect([done.status, done.agent, output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'a1', 'via B\r\n']);
  });

  it('delivers a kill requested through replica A to the agent on replica B', async () => {
    const task = await h.createTask('t1', 'echo begin; sleep 60');
    const call = h.api.tasks.getTaskLogs({ id: task.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
    for await (const { event } of call as AsyncIterable<GetTaskLogsResponse>) {
      if (event?.$case === 'chunk' && Buffer.from(event.value.data).toString().includes('begin')) break;
    }
    call.cancel();
    await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: task.id, reason: 'from A' });
    const { task: done } = await h.finished(task.id);
    expect([done.status, done.signal]).to.deep.equal([TaskStatus.TASK_STATUS_KILLED, 'SIGTERM']);
  });

  it('lets replica B read what replica A wrote, with one view of targets', async () => {
    await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 't1', message: 'changed on A' }), updateMask: ['message'] });
    const onB = new Api({ server: `127.0.0.1:${b!.port}`, token: h.adminToken });
    try {
      expect((await onB.call(onB.targets, onB.targets.getTarget, { name: 't1' })).target?.message).to.equal('changed on A');
    } finally {
      onB.close();
    }
  });
});
