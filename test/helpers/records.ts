/**
 * Stored records as tests build them: every field set, as a store holds
 * them, and any of them overridable. One place, so a new field of a record
 * is added to every test's fixtures at once.
 */
import { newTaskId } from '../../shared/ids.js';
import { unstartedFields, type TargetRecord, type TaskRecord } from '../../server/store/store.js';

/** A task just created (status created, its one event), on target t1. */
export function taskRecord(overrides: Partial<TaskRecord> = {}): TaskRecord {
  const now = overrides.created ?? new Date();
  return {
    id: newTaskId(),
    created: now,
    message: '',
    script: 'true',
    type: 'bash',
    target: 't1',
    status: 'created',
    createdBy: 'user:admin@test',
    ...unstartedFields(),
    timeoutSeconds: 0,
    createdByGroups: [],
    review: [],
    events: [{ time: now, actor: 'user:admin@test', action: 'task.created', from: null, to: 'created', reason: 'created' }],
    ...overrides,
  };
}

/** A task routed to agent a1 with no review (status ready, its two events). */
export function readyTaskRecord(overrides: Partial<TaskRecord> = {}): TaskRecord {
  const now = overrides.created ?? new Date();
  return taskRecord({
    created: now,
    status: 'ready',
    agent: 'a1',
    events: [
      { time: now, actor: 'user:admin@test', action: 'task.created', from: null, to: 'created', reason: 'created' },
      { time: now, actor: 'system', action: 'task.ready', from: 'created', to: 'ready', reason: 'no review required' },
    ],
    ...overrides,
  });
}

/** A bash target served by agent a1, with no review, secrets or redaction. */
export function targetRecord(name: string, overrides: Partial<TargetRecord> = {}): TargetRecord {
  const now = new Date();
  return {
    name,
    type: 'bash',
    agent: 'a1',
    message: '',
    review: 'none',
    reviewers: [],
    groups: [],
    allowTypeOverride: false,
    active: true,
    timeoutSeconds: 0,
    redact: [],
    customDetectors: [],
    secretProvider: '',
    secretPath: '',
    secretMapping: {},
    runAs: '',
    distinctReviewers: true,
    created: now,
    updated: now,
    ...overrides,
  };
}
