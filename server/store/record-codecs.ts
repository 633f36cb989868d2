/**
 * How records are written and read back, one codec per record kind, shared
 * by both stores. Every record is stored with its kind's schema version in
 * `v` ({@link VERSION_FIELD}); reading goes through the kind's upgrade steps
 * from the version it was written at to the current one, then turns its
 * date fields into Dates (ISO strings in the embedded store's JSON, Dates
 * already from BSON). A record of a version this code does not know yet (a
 * newer Taskgate wrote it) is refused with {@link RecordVersionError}, never
 * read as if it were one it knows. Decoding never changes the object it is
 * given.
 *
 * Version 0 is every record written before records carried a version (up to
 * commit 3f54d5f): they never said which release wrote them, so the 0 -> 1
 * step fills every field that any earlier release lacked, with the value
 * that release behaved as. A change of a record's shape from now on adds a
 * step and bumps the version (docs/design.md, "Record versions").
 */
import { FailedPreconditionError } from '../../shared/errors.js';
import type {
  AgentRecord,
  AuditEventRecord,
  DeliveryRecord,
  NewTargetRecord,
  RequestRecord,
  TargetRecord,
  TaskRecord,
  TokenRecord,
  UserRecord,
} from './records.js';

/** The field of a stored record that holds its schema version (absent: version 0). */
export const VERSION_FIELD = 'v';

/**
 * Thrown when a stored record has a schema version this code cannot read:
 * one newer than it knows (written by a later Taskgate, so a rollback that
 * the data has outgrown), or no version number at all.
 */
export class RecordVersionError extends FailedPreconditionError {}

/** A stored document as a store hands it over: the record's fields, `v`, dates as Dates or ISO strings. */
export type StoredDoc = Record<string, unknown>;

/** Turns a stored document of one version into the next version's. Returns a new object. */
type Step = (doc: StoredDoc) => StoredDoc;

/** Writes and reads one kind of record. */
export interface RecordCodec<R> {
  /** "task", "target", ...: named in errors. */
  readonly kind: string;
  /** The version {@link encode} writes, and the newest {@link decode} reads. */
  readonly version: number;
  /** The record as stored: its fields and `v`. A shallow copy; `record` is not changed. */
  encode(record: R): R & { v: number };
  /**
   * The record a stored document holds, in the current shape: upgraded
   * from its version, dates revived, `v` dropped. Throws
   * {@link RecordVersionError} for a version this code does not know.
   */
  decode(doc: StoredDoc): R;
}

interface CodecSpec {
  kind: string;
  /** The field that names the record in errors. */
  key: string;
  /** steps[n] upgrades version n to n + 1; the current version is steps.length. */
  steps: readonly Step[];
  /** The current shape's date fields made Dates, on a copy (nested arrays copied too). */
  revive: (doc: StoredDoc) => StoredDoc;
}

function codec<R>(spec: CodecSpec): RecordCodec<R> {
  const version = spec.steps.length;
  return {
    kind: spec.kind,
    version,
    encode: (record) => ({ ...record, v: version }),
    decode(doc) {
      const stored = doc[VERSION_FIELD] ?? 0;
      const name = typeof doc[spec.key] === 'string' ? ` ${JSON.stringify(doc[spec.key])}` : '';
      if (typeof stored !== 'number' || !Number.isInteger(stored) || stored < 0) {
        throw new RecordVersionError(`stored ${spec.kind}${name} has no readable record version (${JSON.stringify(stored)})`);
      }
      if (stored > version) {
        throw new RecordVersionError(
          `stored ${spec.kind}${name} was written by a newer Taskgate (record version ${stored}; this one reads ${spec.kind} records up to version ${version}): run that release or a later one`,
        );
      }
      let current: StoredDoc = { ...doc };
      delete current[VERSION_FIELD];
      for (let v = stored; v < version; v++) current = spec.steps[v]!(current);
      return spec.revive(current) as R;
    },
  };
}

/** A stored date: a Date (BSON) or its ISO text (JSON); null and absent stay as they are. */
function date(value: unknown): unknown {
  return typeof value === 'string' ? new Date(value) : value;
}

/** A copy of `doc` with `fields` (where present) made Dates. */
function withDates(doc: StoredDoc, fields: readonly string[]): StoredDoc {
  const copy = { ...doc };
  for (const field of fields) if (field in copy) copy[field] = date(copy[field]);
  return copy;
}

/** A copy of `doc` with each of `defaults` that it lacks (absent or null, as `??` reads it). */
function fill(doc: StoredDoc, defaults: StoredDoc): StoredDoc {
  const copy = { ...doc };
  for (const [field, value] of Object.entries(defaults)) copy[field] ??= value;
  return copy;
}

/** The array of objects `doc[field]` holds; [] when it holds none. */
function items(doc: StoredDoc, field: string): StoredDoc[] {
  const value = doc[field];
  return Array.isArray(value) ? (value as StoredDoc[]) : [];
}

/** Tasks. */
export const taskCodec: RecordCodec<TaskRecord> = codec<TaskRecord>({
  kind: 'task',
  key: 'id',
  steps: [
    // 0 -> 1. Fields of tasks written before they had them, with what those releases did:
    // events' action, review and published (2815dd1; their events were all published),
    // killRequested, timeoutSeconds, outputDroppedBytes (efed0a5), findings (303c5e4),
    // createdByGroups (18d5d7d). distinctReviewers, targetUid, requestId and requestMarks
    // are optional in the current shape too: absent means what it meant then.
    (doc) => {
      const events = items(doc, 'events');
      return {
        ...fill(doc, { review: [], killRequested: null, timeoutSeconds: 0, outputDroppedBytes: 0, findings: {}, createdByGroups: [] }),
        published: doc.published ?? events.length,
        events: events.map((e) => ({ ...e, action: e.action ?? `task.${String(e.to)}` })),
      };
    },
  ],
  revive: (doc) => ({
    ...withDates(doc, ['created', 'started', 'finished', 'killRequested']),
    events: items(doc, 'events').map((e) => withDates(e, ['time'])),
    review: items(doc, 'review').map((r) => withDates(r, ['time'])),
  }),
});

/** The fields a target made before them lacks, with the values those releases behaved as. */
const TARGET_DEFAULTS = {
  review: 'none',
  reviewers: [],
  groups: [],
  allowTypeOverride: true,
  active: true,
  timeoutSeconds: 0,
  redact: [],
  customDetectors: [],
  secretProvider: '',
  secretPath: '',
  secretMapping: {},
  runAs: '',
  distinctReviewers: true,
} as const;

/** Targets. */
export const targetCodec: RecordCodec<TargetRecord> = codec<TargetRecord>({
  kind: 'target',
  key: 'name',
  steps: [
    // 0 -> 1: review, reviewers, groups, allowTypeOverride, active (2815dd1), timeoutSeconds
    // (efed0a5), redact, customDetectors (303c5e4), the secret fields (18d5d7d), runAs
    // (59808c3), distinctReviewers (a21fd37). uid (eedba12) stays optional: absent, the
    // target's tasks are known by its name alone.
    // A clone: a filled array or object must not be shared between records.
    (doc) => fill(doc, structuredClone(TARGET_DEFAULTS)),
  ],
  revive: (doc) => withDates(doc, ['created', 'updated']),
});

/** A new target with the fields a caller may leave out (see {@link NewTargetRecord}) set to their defaults. */
export function newTarget(record: NewTargetRecord): TargetRecord {
  return { ...record, runAs: record.runAs ?? TARGET_DEFAULTS.runAs, distinctReviewers: record.distinctReviewers ?? TARGET_DEFAULTS.distinctReviewers };
}

/** Agents. */
export const agentCodec: RecordCodec<AgentRecord> = codec<AgentRecord>({
  kind: 'agent',
  key: 'name',
  steps: [
    // 0 -> 1: the session's tokenId and secretHashes (1441c09); without them there is no session to resume.
    (doc) => fill(doc, { tokenId: '', secretHashes: [] }),
  ],
  revive: (doc) => withDates(doc, ['lastSeen']),
});

/** Users: unchanged since they were first stored (2815dd1). */
export const userCodec: RecordCodec<UserRecord> = codec<UserRecord>({
  kind: 'user',
  key: 'email',
  steps: [(doc) => doc],
  revive: (doc) => withDates(doc, ['created', 'updated']),
});

/** Tokens. */
export const tokenCodec: RecordCodec<TokenRecord> = codec<TokenRecord>({
  kind: 'token',
  key: 'id',
  steps: [
    // 0 -> 1: name, createdBy and revoked (2815dd1; the first release made its tokens itself).
    // expires, lastUsed (3eacc96) and parent (481ce15) stay optional: absent is never / none.
    (doc) => fill(doc, { name: '', createdBy: 'system', revoked: null }),
  ],
  revive: (doc) => withDates(doc, ['created', 'revoked', 'expires', 'lastUsed']),
});

/** Audit events: unchanged since they were first stored (2815dd1). */
export const eventCodec: RecordCodec<AuditEventRecord> = codec<AuditEventRecord>({
  kind: 'event',
  key: 'id',
  steps: [(doc) => doc],
  revive: (doc) => withDates(doc, ['time']),
});

/** Webhook deliveries: unchanged since they were first stored (2815dd1). */
export const deliveryCodec: RecordCodec<DeliveryRecord> = codec<DeliveryRecord>({
  kind: 'delivery',
  key: 'id',
  steps: [(doc) => doc],
  revive: (doc) => withDates(doc, ['nextAttempt', 'created']),
});

/** Request-id records: unchanged since they were first stored (02a5a72). */
export const requestCodec: RecordCodec<RequestRecord> = codec<RequestRecord>({
  kind: 'request',
  key: 'requestId',
  steps: [(doc) => doc],
  revive: (doc) => withDates(doc, ['created', 'expires']),
});
