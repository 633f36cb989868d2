/**
 * Revocation reaches open streams (docs/access.md "Revocation"): a log
 * follower, a watcher or an agent stream is not trusted for its whole life
 * on the check made when it opened. Revoking a token, deactivating a user,
 * a token expiring or a change of groups ends (or re-checks) every open
 * stream of that caller: at once on the server that made the change, and
 * within the re-check interval on another replica.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { TaskStatus, type WatchTaskResponse } from '../../gen/taskgate/v1/task.js';
import { User } from '../../gen/taskgate/v1/user.js';
import { Api } from '../../cli/client.js';
import { TaskgateServer } from '../../server/server.js';
import { AgentError } from '../../agent/agent.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

/** Opens a watcher and resolves once the server has sent its first message (the stream is open). */
async function openWatcher(api: Api, id: string): Promise<{ ended: Promise<ServiceError | null> }> {
  const call = api.tasks.watchTask({ id }, api.metadata);
  const ended = new Promise<ServiceError | null>((resolve) => {
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => resolve(null));
  });
  await new Promise((resolve) => call.once('data', (m: WatchTaskResponse) => resolve(m)));
  return { ended };
}

/** Opens a log follower of a task with no output yet; resolves with how it ends. */
function follow(api: Api, id: string): Promise<ServiceError | null> {
  const call = api.tasks.getTaskLogs({ id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, api.metadata);
  return new Promise((resolve) => {
    call.on('data', () => undefined);
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => resolve(null));
  });
}

for (const kind of STORE_KINDS) {
  describe(`revocation reaches open streams: ${kind.name}`, function () {
    let h: Harness;

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location);
      await h.createTarget('prod', 'a1', 'bash', { groups: ['dev'], review: 3 /* TEAM */, reviewers: ['dba'] });
    });

    afterEach(async () => {
      await h?.close();
    });

    /** A task on prod, waiting for review by dba, created by a member of dev. */
    async function pendingTask(): Promise<string> {
      const creator = await h.user(`creator-${Math.random().toString(36).slice(2, 8)}@x`, ['dev']);
      const { task } = await creator.call(creator.tasks, creator.tasks.createTask, { target: 'prod', script: 'echo hi', message: '', type: '', timeoutSeconds: 0 });
      return task!.id;
    }

    it('ends a follower and a watcher UNAUTHENTICATED when their token is revoked', async () => {
      const id = await pendingTask();
      const member = await h.user('member@x', ['dev']);
      const watcher = await openWatcher(member, id);
      const followed = follow(member, id);
      const { tokens } = await h.api.call(h.api.users, h.api.users.listTokens, { subject: 'member@x' });
      await h.api.call(h.api.users, h.api.users.revokeToken, { id: tokens[0]!.id });
      const [w, f] = await Promise.all([watcher.ended, followed]);
      expect([w?.code, w?.details]).to.deep.equal([status.UNAUTHENTICATED, `token ${tokens[0]!.id} was revoked`]);
      expect([f?.code, f?.details]).to.deep.equal([status.UNAUTHENTICATED, `token ${tokens[0]!.id} was revoked`]);
    });

    it('ends the streams of a deactivated user', async () => {
      const id = await pendingTask();
      const member = await h.user('member@x', ['dev']);
      const watcher = await openWatcher(member, id);
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'member@x', active: false }), updateMask: ['active'] });
      const ended = await watcher.ended;
      expect([ended?.code, ended?.details]).to.deep.equal([status.UNAUTHENTICATED, 'user member@x is deactivated']);
    });

    it('checks a stream again when its user\'s groups change: on while still allowed, ended once not', async () => {
      const id = await pendingTask();
      const member = await h.user('member@x', ['dev']);
      const watcher = await openWatcher(member, id);
      let ended = false;
      void watcher.ended.then(() => (ended = true));
      // Still allowed (dev is kept): the stream goes on.
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'member@x', groups: ['dev', 'ops'] }), updateMask: ['groups'] });
      await h.getTask(id); // a round trip after the re-check the change triggered
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(ended, 'a stream still allowed was ended').to.equal(false);
      // No longer in dev: the task is hidden from them now.
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'member@x', groups: ['ops'] }), updateMask: ['groups'] });
      const err = await watcher.ended;
      expect([err?.code, err?.details]).to.deep.equal([status.NOT_FOUND, `task ${id} not found`]);
    });

    it('refuses an expired token, and ends the stream it had opened', async () => {
      const id = await pendingTask();
      const { secret, token } = await h.api.call(h.api.users, h.api.users.createToken, { user: 'admin@test', name: 'short', ttl: { seconds: 2, nanos: 0 } });
      expect(token!.expires!.getTime() - token!.created!.getTime()).to.be.within(1900, 2100);
      const shortLived = h.client(secret);
      const watcher = await openWatcher(shortLived, id);
      const ended = await watcher.ended;
      expect(ended?.code).to.equal(status.UNAUTHENTICATED);
      expect(ended?.details).to.match(new RegExp(`^token ${token!.id} expired at `));
      const again = await shortLived.call(shortLived.users, shortLived.users.whoAmI, {}).catch((e: ServiceError) => e);
      expect((again as ServiceError).code).to.equal(status.UNAUTHENTICATED);
    });

    it('stops an agent whose token is revoked, with the reason, and runs nothing more on it', async () => {
      const agent = await h.startAgent('a1');
      const stopped = agent.run().then(
        () => null,
        (err: unknown) => err,
      );
      const { tokens } = await h.api.call(h.api.users, h.api.users.listTokens, { subject: 'a1' });
      const live = tokens.find((t) => !t.revoked)!;
      await h.api.call(h.api.users, h.api.users.revokeToken, { id: live.id });
      const err = await stopped;
      expect(err).to.be.instanceOf(AgentError);
      expect((err as AgentError).message).to.equal(`the server refused this agent: token ${live.id} was revoked`);
      await h.createTarget('open', 'a1', 'bash');
      const task = await h.createTask('open', 'echo must not run');
      expect((await h.getTask(task.id)).status).to.equal(TaskStatus.TASK_STATUS_READY);
    });
  });
}

describe('revocation through another replica (mongodb)', function () {
  let h: Harness;
  let b: TaskgateServer | undefined;

  before(async function () {
    const location = await STORE_KINDS.find((k) => k.name === 'mongodb')!.location();
    if (!location) this.skip();
    h = await Harness.start(location);
    b = await TaskgateServer.start({ ...location.options, listen: '127.0.0.1:0' });
    await h.createTarget('prod', 'a1', 'bash', { review: 2 /* ANY */ });
  });

  after(async () => {
    await b?.stop();
    await h?.close();
  });

  it('ends a stream on replica B within its re-check interval when the token is revoked through replica A', async () => {
    const member = await h.user('member@x', []);
    const clientB = new Api({ server: `127.0.0.1:${b!.port}`, token: member.token });
    try {
      const { task } = await member.call(member.tasks, member.tasks.createTask, { target: 'prod', script: 'true', message: '', type: '', timeoutSeconds: 0 });
      const watcher = await openWatcher(clientB, task!.id);
      const started = Date.now();
      const { tokens } = await h.api.call(h.api.users, h.api.users.listTokens, { subject: 'member@x' });
      await h.api.call(h.api.users, h.api.users.revokeToken, { id: tokens[0]!.id });
      const ended = await watcher.ended;
      expect(ended?.code).to.equal(status.UNAUTHENTICATED);
      // Reported, not asserted on (timing is for benchmarks): the bound is the 2 s re-check plus one store read.
      console.log(`      replica B ended the stream ${Date.now() - started} ms after the revocation through A`);
    } finally {
      clientB.close();
    }
  });
});
