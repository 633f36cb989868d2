/** Small pieces every page uses: status badges, times, error lines, table wrappers. */
import type { ComponentChildren } from 'preact';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import type { TaskStatus } from '../../gen/es/taskgate/v1/task_pb.js';
import { formatTime, isoTime, statusName } from './format.js';

/** A task status as a colored word. */
export function StatusBadge({ status }: { status: TaskStatus }) {
  const name = statusName(status);
  return (
    <span class={`status status-${name}`} data-status={name}>
      {name}
    </span>
  );
}

/** A timestamp in local time; nothing when unset. */
export function Time({ time }: { time: Timestamp | undefined }) {
  if (!time) return null;
  return <time dateTime={isoTime(time)}>{formatTime(time)}</time>;
}

/** A failure line, announced to screen readers. */
export function ErrorLine({ error }: { error: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

/** A table that scrolls sideways on narrow screens. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

/** The first line of a text, cut to `max` characters, for list cells. */
export function preview(text: string, max = 80): string {
  const first = text.split('\n', 1)[0] ?? '';
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}
