/** Representative Taskgate messages, as ts-proto objects (the server's shapes). */
import * as tp from '../gen/tsproto/taskgate/v1/task.js';

const script4k = (() => {
  const line = 'for host in $(cat hosts.txt); do ssh "$host" sudo systemctl restart app; done  # restart all\n';
  let s = '#!/bin/bash\nset -euo pipefail\n';
  while (s.length < 4096) s += line;
  return s.slice(0, 4096);
})();

export const createTaskRequest: tp.CreateTaskRequest = {
  target: 'prod-web', script: script4k, message: 'restart app on all web hosts (INC-4211)', type: 'bash', timeoutSeconds: 600,
};

const t0 = Date.UTC(2026, 11, 1, 15, 49, 40, 6);
const at = (ms: number) => new Date(t0 + ms);
export function fullTask(i = 0): tp.Task {
  return {
    id: `01KBD${String(i).padStart(3, '0')}X7Q9ZP3M2V8N4T6R5W`,
    created: at(0), message: 'restart app on all web hosts (INC-4211)', script: script4k, type: 'bash', target: 'prod-web',
    review: [
      { group: 'sre', status: tp.ReviewStatus.REVIEW_STATUS_APPROVED, reviewer: 'alice@example.com', time: at(60_000), comment: 'lgtm' },
      { group: 'security', status: tp.ReviewStatus.REVIEW_STATUS_APPROVED, reviewer: 'bob@example.com', time: at(90_000), comment: '' },
    ],
    status: tp.TaskStatus.TASK_STATUS_SUCCESS, createdBy: 'carol@example.com', agent: 'agent-prod-web-1',
    started: at(91_000), finished: at(153_250), exitCode: 0, signal: '', failureReason: '', outputBytes: 1_234_567,
    events: [
      [tp.TaskStatus.TASK_STATUS_UNSPECIFIED, tp.TaskStatus.TASK_STATUS_CREATED, 'create'],
      [tp.TaskStatus.TASK_STATUS_CREATED, tp.TaskStatus.TASK_STATUS_PENDING_REVIEW, 'submit'],
      [tp.TaskStatus.TASK_STATUS_PENDING_REVIEW, tp.TaskStatus.TASK_STATUS_APPROVED, 'review'],
      [tp.TaskStatus.TASK_STATUS_APPROVED, tp.TaskStatus.TASK_STATUS_READY, 'run'],
      [tp.TaskStatus.TASK_STATUS_READY, tp.TaskStatus.TASK_STATUS_RUNNING, 'start'],
      [tp.TaskStatus.TASK_STATUS_RUNNING, tp.TaskStatus.TASK_STATUS_SUCCESS, 'exit'],
    ].map(([from, to, action], k) => ({ time: at(k * 30_000), actor: k < 4 ? 'carol@example.com' : 'agent-prod-web-1', from: from as tp.TaskStatus, to: to as tp.TaskStatus, reason: '', action: action as string })),
    killRequested: undefined, timeoutSeconds: 600, outputDroppedBytes: 0,
    findings: { email: 3, 'aws-access-key': 1 }, createdByGroups: ['sre', 'oncall'],
  };
}

export const getTaskResponse: tp.GetTaskResponse = { task: fullTask() };
export const listTasksResponse: tp.ListTasksResponse = {
  tasks: Array.from({ length: 50 }, (_, i) => fullTask(i)), nextPageToken: 'MDFLQkQwNDlYN1E5WlAzTTJWOE40VDZSNVc',
};
const data64k = Buffer.alloc(65536);
for (let i = 0; i < data64k.length; i++) data64k[i] = 32 + (i % 95);
export const getTaskLogsChunk: tp.GetTaskLogsResponse = { event: { $case: 'chunk', value: { offset: 1_048_576, data: data64k } } };
