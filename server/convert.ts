/** Conversions between stored records and the wire messages of proto/. */
import { Agent } from '../gen/taskgate/v1/agent.js';
import { Target } from '../gen/taskgate/v1/target.js';
import { Task, TaskStatus as WireStatus } from '../gen/taskgate/v1/task.js';
import type { TaskStatus } from '../shared/task-status.js';
import type { AgentRecord, TargetRecord, TaskRecord } from './store/store.js';

const TO_WIRE: Readonly<Record<TaskStatus, WireStatus>> = {
  created: WireStatus.TASK_STATUS_CREATED,
  'pending-review': WireStatus.TASK_STATUS_PENDING_REVIEW,
  approved: WireStatus.TASK_STATUS_APPROVED,
  rejected: WireStatus.TASK_STATUS_REJECTED,
  ready: WireStatus.TASK_STATUS_READY,
  running: WireStatus.TASK_STATUS_RUNNING,
  success: WireStatus.TASK_STATUS_SUCCESS,
  failure: WireStatus.TASK_STATUS_FAILURE,
  killed: WireStatus.TASK_STATUS_KILLED,
};

/** The wire enum value of a status. */
export function statusToWire(status: TaskStatus): WireStatus {
  return TO_WIRE[status];
}

/** The status named by a wire enum value, or undefined for UNSPECIFIED/unknown. */
export function statusFromWire(value: WireStatus): TaskStatus | undefined {
  for (const [name, wire] of Object.entries(TO_WIRE)) if (wire === value) return name as TaskStatus;
  return undefined;
}

/** A stored task as a wire Task. */
export function taskToWire(task: TaskRecord): Task {
  return Task.fromPartial({
    id: task.id,
    created: task.created,
    message: task.message,
    script: task.script,
    type: task.type,
    target: task.target,
    review: [],
    status: statusToWire(task.status),
    createdBy: task.createdBy,
    agent: task.agent,
    started: task.started ?? undefined,
    finished: task.finished ?? undefined,
    exitCode: task.exitCode ?? undefined,
    signal: task.signal,
    failureReason: task.failureReason,
    outputBytes: task.outputBytes,
    events: task.events.map((e) => ({
      time: e.time,
      actor: e.actor,
      from: e.from ? statusToWire(e.from) : WireStatus.TASK_STATUS_UNSPECIFIED,
      to: statusToWire(e.to),
      reason: e.reason,
    })),
  });
}

/** A stored target as a wire Target. */
export function targetToWire(target: TargetRecord): Target {
  return Target.fromPartial({ ...target });
}

/** A stored agent as a wire Agent, with what this server knows live. */
export function agentToWire(agent: AgentRecord, live: { connected: boolean; runningTasks: number }): Agent {
  return Agent.fromPartial({
    name: agent.name,
    connected: live.connected,
    version: agent.version,
    lastSeen: agent.lastSeen ?? undefined,
    bootId: agent.bootId,
    runningTasks: live.runningTasks,
  });
}
