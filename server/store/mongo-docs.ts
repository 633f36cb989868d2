/**
 * The MongoDB store's documents (server/store/mongo-store.ts): each record
 * in its codec's stored form (server/store/record-codecs.ts), its key as
 * `_id`, and the fields only queries need (a task's outbox flag and audience
 * keys). Every read goes through the codec, so a document written by an
 * older release reads in the current shape, and one written by a newer
 * release is refused.
 */
import { BSON, MongoBulkWriteError, MongoServerError, type Binary } from 'mongodb';
import { ChunkEncoding, unpackChunk } from './chunk-packing.js';
import {
  agentCodec,
  deliveryCodec,
  eventCodec,
  requestCodec,
  targetCodec,
  taskCodec,
  tokenCodec,
  userCodec,
  type RecordCodec,
  type StoredDoc,
} from './record-codecs.js';
import {
  hasUnpublished,
  taskAudience,
  type AgentRecord,
  type AuditEventRecord,
  type ChunkRecord,
  type DeliveryRecord,
  type RequestRecord,
  type TargetRecord,
  type TaskRecord,
  type TokenRecord,
  type UserRecord,
} from './records.js';

/** The schema version every document carries (absent in documents written before versions: 0). */
interface Versioned {
  _id: string;
  v?: number;
}

/** `outbox` mirrors hasUnpublished(), so unpublished tasks are one index scan. */
export type TaskDoc = Omit<TaskRecord, 'id'> & Versioned & { outbox: boolean; audience: string[] };
export type TargetDoc = Omit<TargetRecord, 'name'> & Versioned;
export type AgentDoc = Omit<AgentRecord, 'name'> & Versioned;
/** Tokens keep their `id` beside `_id` (as they always have). */
export type TokenDoc = TokenRecord & Versioned;
export type UserDoc = Omit<UserRecord, 'email'> & Versioned;
export type EventDoc = Omit<AuditEventRecord, 'id'> & Versioned;
export type DeliveryDoc = Omit<DeliveryRecord, 'id'> & Versioned;
/** `_id` is the store's request key: the unique _id is what makes binding a request id race-safe. */
export type RequestDoc = RequestRecord & Versioned;
export interface ChunkDoc {
  _id: string;
  taskId: string;
  seq: number;
  offset: number;
  end: number;
  data: Binary;
  /** How `data` is encoded (server/store/chunk-packing.ts); absent: raw, as every chunk stored before it. */
  encoding?: number;
}

const DUPLICATE_KEY = 11000;

/** Whether the error is a unique index refusing a second insert of one key. */
export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/** Whether every write of a failed bulk insert failed as a duplicate key (so, for idempotent inserts, nothing is wrong). */
export function onlyDuplicateKeys(err: unknown): boolean {
  if (isDuplicateKey(err)) return true;
  if (!(err instanceof MongoBulkWriteError)) return false;
  const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
  return errors.length > 0 && errors.every((e) => e.code === DUPLICATE_KEY);
}

/**
 * `doc` as a read would return it once written: through BSON, as the driver
 * sends and reads it (undefined fields become null or vanish alike), and a
 * copy no caller holds.
 */
export function asStored(doc: TaskDoc): TaskDoc {
  return BSON.deserialize(BSON.serialize(doc)) as TaskDoc;
}

/** The record of a document whose `_id` is the record's `key` field; `drop` names fields only the store's queries use. */
function decode<R>(codec: RecordCodec<R>, key: string, doc: Versioned, drop: readonly string[] = []): R {
  const { _id, ...rest } = doc as Versioned & StoredDoc;
  const fields: StoredDoc = { [key]: _id, ...rest };
  for (const field of drop) delete fields[field];
  return codec.decode(fields);
}

/** The document of a record, its `key` field moved to `_id`. */
function encode<R>(codec: RecordCodec<R>, key: string, record: R): StoredDoc & Versioned {
  const { [key]: id, ...rest } = codec.encode(record) as StoredDoc;
  return { _id: id as string, ...rest };
}

export function toTask(doc: TaskDoc): TaskRecord {
  return decode(taskCodec, 'id', doc, ['outbox', 'audience']);
}

export function toTaskDoc(task: TaskRecord): TaskDoc {
  return { ...encode(taskCodec, 'id', task), outbox: hasUnpublished(task), audience: taskAudience(task) } as unknown as TaskDoc;
}

export function toTarget(doc: TargetDoc): TargetRecord {
  return decode(targetCodec, 'name', doc);
}

export function toTargetDoc(target: TargetRecord): TargetDoc {
  return encode(targetCodec, 'name', target) as unknown as TargetDoc;
}

export function toAgent(doc: AgentDoc): AgentRecord {
  return decode(agentCodec, 'name', doc);
}

export function toAgentDoc(agent: AgentRecord): AgentDoc {
  return encode(agentCodec, 'name', agent) as unknown as AgentDoc;
}

export function toUser(doc: UserDoc): UserRecord {
  return decode(userCodec, 'email', doc);
}

export function toUserDoc(user: UserRecord): UserDoc {
  return encode(userCodec, 'email', user) as unknown as UserDoc;
}

export function toToken(doc: TokenDoc): TokenRecord {
  // The record's own `id` is stored too; `_id` holds the same.
  return decode(tokenCodec, 'id', doc);
}

export function toTokenDoc(token: TokenRecord): TokenDoc {
  return { _id: token.id, ...tokenCodec.encode(token) };
}

export function toEvent(doc: EventDoc): AuditEventRecord {
  return decode(eventCodec, 'id', doc);
}

export function toEventDoc(event: AuditEventRecord): EventDoc {
  return encode(eventCodec, 'id', event) as unknown as EventDoc;
}

export function toDelivery(doc: DeliveryDoc): DeliveryRecord {
  return decode(deliveryCodec, 'id', doc);
}

export function toDeliveryDoc(delivery: DeliveryRecord): DeliveryDoc {
  return encode(deliveryCodec, 'id', delivery) as unknown as DeliveryDoc;
}

export function toRequest(doc: RequestDoc): RequestRecord {
  // `_id` is the request key; caller and requestId are fields of their own.
  const fields: StoredDoc = { ...doc };
  delete fields._id;
  return requestCodec.decode(fields);
}

export function toRequestDoc(_id: string, record: RequestRecord): RequestDoc {
  return { _id, ...requestCodec.encode(record) };
}

export function toChunk(doc: ChunkDoc): ChunkRecord {
  const bytes = doc.data.buffer;
  const stored = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = unpackChunk(stored, doc.encoding ?? ChunkEncoding.RAW, doc.end - doc.offset, { taskId: doc.taskId, seq: doc.seq, offset: doc.offset });
  return { taskId: doc.taskId, seq: doc.seq, offset: doc.offset, data };
}
