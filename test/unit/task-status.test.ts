import { expect } from 'chai';
import { canMove, isTerminal, sourcesOf, TASK_STATUSES, type TaskStatus } from '../../shared/task-status.js';

describe('task state machine', () => {
  // docs/state-machine.md's table, plus running -> ready (the delivery protocol's requeue).
  const allowed: Array<[TaskStatus, TaskStatus]> = [
    ['created', 'pending-review'],
    ['created', 'ready'],
    ['pending-review', 'approved'],
    ['pending-review', 'rejected'],
    ['approved', 'ready'],
    ['ready', 'running'],
    ['running', 'success'],
    ['running', 'failure'],
    ['running', 'killed'],
    ['running', 'ready'],
    ['created', 'killed'],
    ['pending-review', 'killed'],
    ['approved', 'killed'],
    ['ready', 'killed'],
  ];

  it('allows exactly the documented moves', () => {
    const key = (a: TaskStatus, b: TaskStatus): string => `${a}->${b}`;
    const expected = new Set(allowed.map(([a, b]) => key(a, b)));
    for (const from of TASK_STATUSES) {
      for (const to of TASK_STATUSES) {
        expect(canMove(from, to), key(from, to)).to.equal(expected.has(key(from, to)));
      }
    }
  });

  it('never leaves a terminal status', () => {
    for (const status of TASK_STATUSES.filter(isTerminal)) {
      expect(TASK_STATUSES.filter((to) => canMove(status, to)), status).to.deep.equal([]);
    }
    expect(TASK_STATUSES.filter(isTerminal)).to.deep.equal(['rejected', 'success', 'failure', 'killed']);
  });

  it('lists the sources of a status', () => {
    expect(sourcesOf('ready')).to.deep.equal(['created', 'approved', 'running']);
    expect(sourcesOf('killed')).to.deep.equal(['created', 'pending-review', 'approved', 'ready', 'running']);
  });
});
