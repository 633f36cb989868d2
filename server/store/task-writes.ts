/**
 * The task writes both stores share: each is a mutation of the task through
 * the one primitive every store implements, {@link TaskStore.updateTask}
 * (read, mutate, write, atomic for that task, ending counts output), so
 * what a transition or a patch means is written once.
 */
import type { TaskStatus } from '../../shared/task-status.js';
import { applyTransition, type TaskPatch, type TaskRecord, type TaskStore, type TransitionRequest } from './store.js';

export abstract class TaskWrites implements Pick<TaskStore, 'transition' | 'patchTask'> {
  abstract updateTask(id: string, mutate: (task: TaskRecord) => TaskRecord | null): Promise<TaskRecord | null>;

  /** See {@link TaskStore.transition}. */
  transition(request: TransitionRequest): Promise<TaskRecord | null> {
    return this.updateTask(request.id, (task) => applyTransition(task, request));
  }

  /** See {@link TaskStore.patchTask}. */
  patchTask(id: string, status: TaskStatus, patch: TaskPatch): Promise<TaskRecord | null> {
    return this.updateTask(id, (task) => (task.status === status ? { ...task, ...patch } : null));
  }
}
