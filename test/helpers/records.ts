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

/**
 * Stored records as earlier releases wrote them, in the embedded store's
 * JSON (dates as ISO text; the MongoDB store wrote the same fields with
 * BSON dates, see {@link withBsonDates}). None carries a record version.
 */
export const OLD_DOCS = {
  /**
   * What main at 3f54d5f (the last release without record versions) wrote:
   * read from a data directory that a build of it made (a task taken
   * through review, a run and a kill; its target's secret mapping has keys
   * named like date fields, which that release read back as Invalid Date).
   */
  latest: {
  task: "{\"id\":\"01JOLDTASK0000000000000001\",\"created\":\"2026-12-01T10:00:00.000Z\",\"message\":\"why\",\"script\":\"echo hi\",\"type\":\"bash\",\"target\":\"db\",\"status\":\"killed\",\"createdBy\":\"user:a@x\",\"agent\":\"a1\",\"bootId\":\"boot1\",\"started\":\"2026-12-01T10:04:00.000Z\",\"finished\":\"2026-12-01T10:06:00.000Z\",\"exitCode\":null,\"signal\":\"SIGKILL\",\"failureReason\":\"\",\"outputBytes\":3,\"killRequested\":\"2026-12-01T10:05:00.000Z\",\"timeoutSeconds\":30,\"outputDroppedBytes\":0,\"findings\":{\"EMAIL\":2},\"createdByGroups\":[\"dev\"],\"review\":[{\"group\":\"dba\",\"status\":\"approved\",\"reviewer\":\"user:b@x\",\"time\":\"2026-12-01T10:02:00.000Z\",\"comment\":\"ok\"}],\"distinctReviewers\":true,\"targetUid\":\"u1\",\"events\":[{\"time\":\"2026-12-01T10:00:00.000Z\",\"actor\":\"user:a@x\",\"action\":\"task.created\",\"from\":null,\"to\":\"created\",\"reason\":\"created\"},{\"time\":\"2026-12-01T10:01:00.000Z\",\"actor\":\"system\",\"action\":\"task.pending-review\",\"from\":\"created\",\"to\":\"pending-review\",\"reason\":\"review\"},{\"time\":\"2026-12-01T10:02:00.000Z\",\"actor\":\"user:b@x\",\"action\":\"task.approved\",\"from\":\"pending-review\",\"to\":\"approved\",\"reason\":\"approved\"},{\"time\":\"2026-12-01T10:03:00.000Z\",\"actor\":\"user:a@x\",\"action\":\"task.ready\",\"from\":\"approved\",\"to\":\"ready\",\"reason\":\"run\"},{\"time\":\"2026-12-01T10:04:00.000Z\",\"actor\":\"agent:a1\",\"action\":\"task.running\",\"from\":\"ready\",\"to\":\"running\",\"reason\":\"handed to agent\"},{\"time\":\"2026-12-01T10:06:00.000Z\",\"actor\":\"agent:a1\",\"action\":\"task.killed\",\"from\":\"running\",\"to\":\"killed\",\"reason\":\"killed\"}],\"published\":0,\"requestId\":\"req-1\"}",
  target: "{\"name\":\"db\",\"uid\":\"u1\",\"type\":\"bash\",\"agent\":\"a1\",\"message\":\"m\",\"review\":\"team\",\"reviewers\":[\"dba\"],\"groups\":[\"dev\"],\"allowTypeOverride\":false,\"active\":true,\"timeoutSeconds\":30,\"redact\":[\"EMAIL\"],\"customDetectors\":[{\"infoType\":\"X\",\"pattern\":\"x+\"}],\"secretProvider\":\"env\",\"secretPath\":\"S\",\"secretMapping\":{\"time\":\"T\",\"created\":\"C\",\"PGPASS\":\"pass\"},\"runAs\":\"\",\"distinctReviewers\":true,\"created\":\"2026-12-01T10:00:00.000Z\",\"updated\":\"2026-12-01T10:01:00.000Z\"}",
  agent: "{\"name\":\"a1\",\"version\":\"0.1.0\",\"bootId\":\"boot1\",\"lastSeen\":\"2026-12-01T10:06:00.000Z\",\"connected\":true,\"tokenId\":\"tok-a\",\"secretHashes\":[\"h2\",\"h1\"]}",
  user: "{\"email\":\"a@x\",\"name\":\"A\",\"groups\":[\"dev\"],\"active\":true,\"created\":\"2026-12-01T10:00:00.000Z\",\"updated\":\"2026-12-01T10:01:00.000Z\"}",
  token: "{\"id\":\"tok-u\",\"hash\":\"hash-u\",\"kind\":\"user\",\"subject\":\"a@x\",\"name\":\"cli\",\"created\":\"2026-12-01T10:00:00.000Z\",\"createdBy\":\"system\",\"revoked\":\"2026-12-01T10:08:00.000Z\",\"expires\":\"2026-12-02T10:00:00.000Z\",\"lastUsed\":\"2026-12-01T10:07:00.000Z\"}",
  event: "{\"id\":\"01M8RGR080-01JOLDTASK0000000000000001-00000\",\"time\":\"2026-12-01T10:00:00.000Z\",\"actor\":\"user:a@x\",\"action\":\"task.created\",\"resource\":\"tasks/01JOLDTASK0000000000000001\",\"from\":\"\",\"to\":\"created\",\"detail\":\"created\"}",
  delivery: "{\"id\":\"hook1:ev1\",\"hook\":\"hook1\",\"eventId\":\"ev1\",\"body\":\"{}\",\"state\":\"pending\",\"attempts\":0,\"nextAttempt\":\"2026-12-01T10:09:00.000Z\",\"lastError\":\"\",\"created\":\"2026-12-01T10:06:00.000Z\"}",
  request: "{\"caller\":\"user:a@x\",\"requestId\":\"req-1\",\"method\":\"CreateTask\",\"hash\":\"rh\",\"taskId\":\"01JOLDTASK0000000000000001\",\"created\":\"2026-12-01T10:00:00.000Z\",\"expires\":\"2026-12-01T11:00:00.000Z\",\"done\":true}",
  },
  /** The first release (ded7a63): tasks, targets, agents and tokens with only their first fields. */
  first: {
    task: '{"id":"01JFIRST000000000000000001","created":"2026-11-28T09:00:00.000Z","message":"m","script":"true","type":"bash","target":"t1","status":"success","createdBy":"user:admin","agent":"a1","bootId":"b1","started":"2026-11-28T09:00:01.000Z","finished":"2026-11-28T09:00:02.000Z","exitCode":0,"signal":"","failureReason":"","outputBytes":5,"events":[{"time":"2026-11-28T09:00:00.000Z","actor":"user:admin","from":null,"to":"created","reason":"created"},{"time":"2026-11-28T09:00:00.500Z","actor":"system","from":"created","to":"ready","reason":"no review required"},{"time":"2026-11-28T09:00:01.000Z","actor":"agent:a1","from":"ready","to":"running","reason":"handed to agent"},{"time":"2026-11-28T09:00:02.000Z","actor":"agent:a1","from":"running","to":"success","reason":"exit 0"}]}',
    target: '{"name":"t1","type":"bash","agent":"a1","message":"","created":"2026-11-28T08:00:00.000Z","updated":"2026-11-28T08:30:00.000Z"}',
    agent: '{"name":"a1","version":"0.1.0","bootId":"b1","lastSeen":"2026-11-28T09:00:02.000Z","connected":false}',
    token: '{"id":"tok1","hash":"h1","kind":"agent","subject":"a1","created":"2026-11-28T08:00:00.000Z"}',
  },
  /** Releases in between: a task of efed0a5 (kills and timeouts, no findings yet), a target of 59808c3 (runAs, no distinctReviewers), a token of 2815dd1 (no expiry). */
  between: {
    task: '{"id":"01JBETWEEN0000000000000001","created":"2026-11-28T12:00:00.000Z","message":"","script":"sleep 100","type":"bash","target":"t1","status":"running","createdBy":"user:a@x","agent":"a1","bootId":"b2","started":"2026-11-28T12:00:01.000Z","finished":null,"exitCode":null,"signal":"","failureReason":"","outputBytes":0,"killRequested":"2026-11-28T12:00:05.000Z","timeoutSeconds":60,"outputDroppedBytes":0,"review":[],"events":[{"time":"2026-11-28T12:00:00.000Z","actor":"user:a@x","action":"task.created","from":null,"to":"created","reason":"created"}],"published":1}',
    target: '{"name":"t2","type":"bash","agent":"a1","message":"","review":"team","reviewers":["dba","sre"],"groups":[],"allowTypeOverride":false,"active":true,"timeoutSeconds":0,"redact":[],"customDetectors":[],"secretProvider":"","secretPath":"","secretMapping":{},"runAs":"postgres","created":"2026-12-01T08:00:00.000Z","updated":"2026-12-01T08:00:00.000Z"}',
    token: '{"id":"tok2","hash":"h2","kind":"user","subject":"a@x","name":"cli","created":"2026-11-28T08:00:00.000Z","createdBy":"user:admin","revoked":null}',
  },
} as const;

/** A stored JSON document as the MongoDB store held it: parsed, with its ISO timestamps as Dates (BSON dates). */
export function withBsonDates(json: string): Record<string, unknown> {
  return JSON.parse(json, (_key, value: unknown) => (typeof value === 'string' && ISO_TIME.test(value) ? new Date(value) : value)) as Record<string, unknown>;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
