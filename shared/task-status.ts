/**
 * The task lifecycle of the Runops model: the nine statuses and the only moves
 * allowed between them (docs/state-machine.md). Every part of Taskgate that
 * changes a task's status asks {@link canMove} first; the store then makes the
 * move conditional on the status still being the expected one.
 */

/** A task's status, spelled as Runops spells it. */
export type TaskStatus =
  | 'created'
  | 'pending-review'
  | 'approved'
  | 'rejected'
  | 'ready'
  | 'running'
  | 'success'
  | 'failure'
  | 'killed';

/** Every status, in lifecycle order. */
export const TASK_STATUSES: readonly TaskStatus[] = [
  'created',
  'pending-review',
  'approved',
  'rejected',
  'ready',
  'running',
  'success',
  'failure',
  'killed',
];

/** Statuses a task never leaves. */
export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>([
  'rejected',
  'success',
  'failure',
  'killed',
]);

const MOVES: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  created: ['pending-review', 'ready', 'killed'],
  'pending-review': ['approved', 'rejected', 'killed'],
  approved: ['ready', 'killed'],
  rejected: [],
  ready: ['running', 'killed'],
  // running -> ready is the delivery protocol's one step back: the task was
  // claimed for an agent process that, on reconnecting, says it never
  // received it (docs/agent-protocol.md, step 3 of connecting). Nothing was executed.
  running: ['success', 'failure', 'killed', 'ready'],
  success: [],
  failure: [],
  killed: [],
};

/** Whether a task may move from `from` to `to`. */
export function canMove(from: TaskStatus, to: TaskStatus): boolean {
  return MOVES[from].includes(to);
}

/** The statuses from which a task may move to `to`. */
export function sourcesOf(to: TaskStatus): TaskStatus[] {
  return TASK_STATUSES.filter((from) => canMove(from, to));
}

/** Whether the task has ended for good. */
export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** Whether `value` names a status. */
export function isTaskStatus(value: string): value is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(value);
}
