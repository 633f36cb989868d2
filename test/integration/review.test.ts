/**
 * The review flow through the API, on both stores: who may decide, what each
 * decision does, and that racing decisions end in one consistent outcome.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ReviewMode, Target } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision, ReviewStatus, TaskStatus, type Task, type WatchTaskResponse } from '../../gen/taskgate/v1/task.js';
import { User } from '../../gen/taskgate/v1/user.js';
import type { Api } from '../../cli/client.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const APPROVE = ReviewDecision.REVIEW_DECISION_APPROVE;
const REJECT = ReviewDecision.REVIEW_DECISION_REJECT;

/** The call's error, or null when it succeeded. */
async function outcome(p: Promise<unknown>): Promise<ServiceError | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return err as ServiceError;
  }
}

for (const kind of STORE_KINDS) {
  describe(`reviews: ${kind.name}`, function () {
    let h: Harness;
    let dev: Api;

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location);
      dev = await h.user('dev@x', ['dev']);
    });

    afterEach(async () => {
      await h?.close();
    });

    async function create(api: Api, target: string): Promise<Task> {
      return (await api.call(api.tasks, api.tasks.createTask, { target, script: 'echo reviewed', message: 'please', type: '', timeoutSeconds: 0 })).task!;
    }

    function review(api: Api, id: string, decision: ReviewDecision, group = '', comment = ''): Promise<Task> {
      return api.call(api.tasks, api.tasks.reviewTask, { id, decision, group, comment }).then((r) => r.task!);
    }

    it('needs one approval from anyone but the creator with review "anyone"', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
      const ops = await h.user('ops@x', ['ops']);
      const task = await create(dev, 't1');
      expect([task.status, task.review.map((r) => [r.group, r.status])]).to.deep.equal([
        TaskStatus.TASK_STATUS_PENDING_REVIEW,
        [['', ReviewStatus.REVIEW_STATUS_PENDING]],
      ]);
      expect((await outcome(review(dev, task.id, APPROVE)))?.code).to.equal(status.PERMISSION_DENIED);
      const approved = await review(ops, task.id, APPROVE, '', 'fine');
      expect([approved.status, approved.review[0]?.reviewer, approved.review[0]?.comment]).to.deep.equal([
        TaskStatus.TASK_STATUS_APPROVED,
        'user:ops@x',
        'fine',
      ]);
    });

    it('with review "anyone" on a restricted target, takes reviewers only among those who may use it; others do not see the task', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE, groups: ['dev'] });
      const ops = await h.user('ops@x', ['ops']);
      const peer = await h.user('peer@x', ['dev']);
      const task = await create(dev, 't1');
      expect((await outcome(ops.call(ops.tasks, ops.tasks.getTask, { id: task.id })))?.code).to.equal(status.NOT_FOUND);
      expect((await outcome(review(ops, task.id, APPROVE)))?.code).to.equal(status.NOT_FOUND);
      const { tasks } = await ops.call(ops.tasks, ops.tasks.listTasks, { statuses: [], target: '', pageSize: 0, pageToken: '', awaitingMyReview: true, createdByMe: false });
      expect(tasks.map((t) => t.id)).not.to.include(task.id);
      const approved = await review(peer, task.id, APPROVE);
      expect([approved.status, approved.review[0]?.reviewer]).to.deep.equal([TaskStatus.TASK_STATUS_APPROVED, 'user:peer@x']);
    });

    it('checks again at RunTask that the creator may still use the target', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE, groups: ['dev'] });
      const peer = await h.user('peer@x', ['dev']);
      const task = await create(dev, 't1');
      await review(peer, task.id, APPROVE);
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'dev@x', groups: ['ops'] }), updateMask: ['groups'] });
      for (const runner of [h.api, dev]) {
        const refused = await outcome(runner.call(runner.tasks, runner.tasks.runTask, { id: task.id }));
        expect([refused?.code, refused?.details]).to.deep.equal([
          status.PERMISSION_DENIED,
          `task ${task.id} was created by user:dev@x, who may no longer use target "t1" (it is for dev); they must be in one of those groups for it to run`,
        ]);
      }
      expect((await h.getTask(task.id)).status).to.equal(TaskStatus.TASK_STATUS_APPROVED);
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'dev@x', groups: ['dev'] }), updateMask: ['groups'] });
      expect((await h.api.call(h.api.tasks, h.api.tasks.runTask, { id: task.id })).task?.status).to.equal(TaskStatus.TASK_STATUS_READY);
    });

    it('needs one approval per reviewer group; approving again changes nothing', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba', 'sre'] });
      const dba = await h.user('dba@x', ['dba']);
      const dba2 = await h.user('dba2@x', ['dba']);
      const sre = await h.user('sre@x', ['sre']);
      const task = await create(dev, 't1');
      const first = await review(dba, task.id, APPROVE);
      expect(first.status).to.equal(TaskStatus.TASK_STATUS_PENDING_REVIEW);
      const again = await review(dba2, task.id, APPROVE);
      expect([again.events.length, again.review[0]?.reviewer]).to.deep.equal([first.events.length, 'user:dba@x']);
      expect((await outcome(dev.call(dev.tasks, dev.tasks.runTask, { id: task.id })))?.details).to.match(/still pending-review; it needs approval by sre/);
      const done = await review(sre, task.id, APPROVE);
      expect(done.status).to.equal(TaskStatus.TASK_STATUS_APPROVED);
      expect(done.events.filter((e) => e.action === 'task.approved')).to.have.length(1);
      expect((await review(sre, task.id, APPROVE)).events.length).to.equal(done.events.length);
    });

    it('needs a different person for each reviewer group unless the target says otherwise', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba', 'sre'] });
      const both = await h.user('both@x', ['dba', 'sre']);
      const sre = await h.user('sre@x', ['sre']);
      const task = await create(dev, 't1');
      await review(both, task.id, APPROVE, 'dba');
      const again = await outcome(review(both, task.id, APPROVE, 'sre'));
      expect([again?.code, again?.details]).to.deep.equal([
        status.PERMISSION_DENIED,
        `you approved task ${task.id} for dba already; target "t1" needs a different person for each reviewer group`,
      ]);
      expect((await review(sre, task.id, APPROVE)).status).to.equal(TaskStatus.TASK_STATUS_APPROVED);
      // Tasks keep the rule they were created under; new ones take the target's new one.
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 't1', distinctReviewers: false }), updateMask: ['distinct_reviewers'] });
      const second = await create(dev, 't1');
      await review(both, second.id, APPROVE, 'dba');
      expect((await review(both, second.id, APPROVE, 'sre')).status).to.equal(TaskStatus.TASK_STATUS_APPROVED);
    });

    it('asks a reviewer in several groups which one they act for', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba', 'sre'], distinctReviewers: false });
      const both = await h.user('both@x', ['dba', 'sre']);
      const task = await create(dev, 't1');
      const unsure = await outcome(review(both, task.id, APPROVE));
      expect([unsure?.code, unsure?.details]).to.deep.equal([
        status.INVALID_ARGUMENT,
        'you are in dba and sre, which both review this task; say which group you act for',
      ]);
      expect((await outcome(review(both, task.id, APPROVE, 'ops')))?.details).to.equal(`task ${task.id} needs reviews from dba, sre, not from "ops"`);
      await review(both, task.id, APPROVE, 'dba');
      // Only sre is pending now, so no group is needed.
      expect((await review(both, task.id, APPROVE)).status).to.equal(TaskStatus.TASK_STATUS_APPROVED);
    });

    it('runs an approved task only when its creator or an admin says so, on an active target', async () => {
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
      const ops = await h.user('ops@x', ['ops']);
      const task = await create(dev, 't1');
      const watched: TaskStatus[] = [];
      const watch = (async () => {
        for await (const { task: t } of dev.tasks.watchTask({ id: task.id }, dev.metadata) as AsyncIterable<WatchTaskResponse>) {
          if (t && watched.at(-1) !== t.status) watched.push(t.status);
        }
      })();
      await review(ops, task.id, APPROVE);
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 't1', active: false }), updateMask: ['active'] });
      expect((await outcome(dev.call(dev.tasks, dev.tasks.runTask, { id: task.id })))?.details).to.equal('target "t1" is inactive; activate it to run tasks');
      expect((await outcome(create(dev, 't1')))?.code).to.equal(status.FAILED_PRECONDITION);
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 't1', active: true }), updateMask: ['active'] });
      await dev.call(dev.tasks, dev.tasks.runTask, { id: task.id });
      const { task: finished, output } = await h.finished(task.id);
      expect([finished.status, output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, 'reviewed\r\n']);
      await watch;
      // The watcher saw every status (it may see two changes as one snapshot, never out of order).
      const order = [
        TaskStatus.TASK_STATUS_PENDING_REVIEW,
        TaskStatus.TASK_STATUS_APPROVED,
        TaskStatus.TASK_STATUS_READY,
        TaskStatus.TASK_STATUS_RUNNING,
        TaskStatus.TASK_STATUS_SUCCESS,
      ];
      expect(watched[0]).to.equal(TaskStatus.TASK_STATUS_PENDING_REVIEW);
      expect(watched.at(-1)).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect(watched.map((s) => order.indexOf(s))).to.deep.equal([...watched.map((s) => order.indexOf(s))].sort());
    });

    it('ends racing approve and reject in exactly one outcome', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba'] });
      const a = await h.user('dba-a@x', ['dba']);
      const b = await h.user('dba-b@x', ['dba']);
      for (let round = 0; round < 10; round++) {
        const task = await create(dev, 't1');
        const [approve, reject] = await Promise.all([outcome(review(a, task.id, APPROVE)), outcome(review(b, task.id, REJECT, '', 'no'))]);
        const final = await h.getTask(task.id);
        const decisive = final.events.filter((e) => e.action === 'task.approved' || e.action === 'task.rejected');
        expect(decisive, JSON.stringify(final.events)).to.have.length(1);
        if (final.status === TaskStatus.TASK_STATUS_APPROVED) {
          expect([approve, reject?.code]).to.deep.equal([null, status.FAILED_PRECONDITION]);
          expect(final.review[0]).to.include({ status: ReviewStatus.REVIEW_STATUS_APPROVED, reviewer: 'user:dba-a@x' });
        } else {
          expect(final.status).to.equal(TaskStatus.TASK_STATUS_REJECTED);
          expect([approve?.code, reject]).to.deep.equal([status.FAILED_PRECONDITION, null]);
          expect(final.review[0]).to.include({ status: ReviewStatus.REVIEW_STATUS_REJECTED, reviewer: 'user:dba-b@x', comment: 'no' });
        }
      }
    });

    it('records both of two groups approving at the same moment, and approves once', async () => {
      await h.createTarget('t1', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba', 'sre'] });
      const dba = await h.user('dba@x', ['dba']);
      const dba2 = await h.user('dba2@x', ['dba']);
      const sre = await h.user('sre@x', ['sre']);
      for (let round = 0; round < 10; round++) {
        const task = await create(dev, 't1');
        const results = await Promise.all([review(dba, task.id, APPROVE), review(sre, task.id, APPROVE), review(dba2, task.id, APPROVE)]);
        expect(results.map((t) => t.id)).to.deep.equal([task.id, task.id, task.id]);
        const final = await h.getTask(task.id);
        expect(final.status).to.equal(TaskStatus.TASK_STATUS_APPROVED);
        expect(final.review.map((r) => [r.group, r.status])).to.deep.equal([
          ['dba', ReviewStatus.REVIEW_STATUS_APPROVED],
          ['sre', ReviewStatus.REVIEW_STATUS_APPROVED],
        ]);
        expect(final.events.filter((e) => e.action === 'task.approved')).to.have.length(1);
        expect(final.events.filter((e) => e.action === 'task.review')).to.have.length(2);
      }
    });
  });
}
