/** How values from the API are shown: statuses, times, sizes, people. */
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { ReviewMode, type Target } from '../../gen/es/taskgate/v1/target_pb.js';
import { ReviewStatus, TaskStatus } from '../../gen/es/taskgate/v1/task_pb.js';

/** A status as Runops spells it: "pending-review", "running". */
export function statusName(status: TaskStatus): string {
  return (TaskStatus[status] ?? 'unknown').toLowerCase().replace(/_/g, '-');
}

/** The statuses a user filters by, in lifecycle order. */
export const STATUSES: readonly TaskStatus[] = [
  TaskStatus.CREATED,
  TaskStatus.PENDING_REVIEW,
  TaskStatus.APPROVED,
  TaskStatus.REJECTED,
  TaskStatus.READY,
  TaskStatus.RUNNING,
  TaskStatus.SUCCESS,
  TaskStatus.FAILURE,
  TaskStatus.KILLED,
];

/** The status named `name` ("running"), if any. */
export function statusFromName(name: string | null): TaskStatus | undefined {
  return STATUSES.find((status) => statusName(status) === name);
}

const TERMINAL = new Set([TaskStatus.REJECTED, TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.KILLED]);

/** Whether a task in `status` never changes again. */
export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL.has(status);
}

/** A review's state in words. */
export function reviewStatusName(status: ReviewStatus): string {
  return (ReviewStatus[status] ?? 'unknown').toLowerCase();
}

/** A timestamp as the browser's local date and time; "" when unset. */
export function formatTime(time: Timestamp | undefined): string {
  if (!time) return '';
  return timestampDate(time).toLocaleString();
}

/** A timestamp in ISO form for `<time datetime>`; "" when unset. */
export function isoTime(time: Timestamp | undefined): string {
  return time ? timestampDate(time).toISOString() : '';
}

/** A byte count in B, KiB, MiB or GiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "user:ann@example.com" → "ann@example.com"; other actors as they are. */
export function actorName(actor: string): string {
  return actor.startsWith('user:') ? actor.slice('user:'.length) : actor;
}

/** Who must approve a target's tasks, in words. */
export function reviewRule(target: Target): string {
  switch (target.review) {
    case ReviewMode.ANYONE:
      return 'One approval from any user other than the creator.';
    case ReviewMode.TEAM: {
      const distinct = target.distinctReviewers !== false && target.reviewers.length > 1 ? ' (a different person for each)' : '';
      return `One approval from each of: ${target.reviewers.join(', ')}${distinct}.`;
    }
    default:
      return 'No review: tasks run at once.';
  }
}
