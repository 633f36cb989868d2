/**
 * The history the growth benchmark seeds (bench/growth.ts): finished tasks
 * as a server leaves them, with a chunk or two of ordinary log lines each,
 * on several targets, by several creators, mostly successes; written
 * before a server opens the store.
 * Every task but its ids is a function of its index, so each run seeds
 * the same history.
 *
 * Written in bulk, in the stores' own row and document shapes (one call per
 * task through the Store takes 18 minutes for a million on SQLite, hours
 * for 100,000 on FerretDB); each seeding then reads a task back through the
 * store, so a change of those shapes fails the run instead of seeding
 * something the store does not read.
 */
import Database from 'better-sqlite3';
import { Binary, MongoClient } from 'mongodb';
import { deepStrictEqual } from 'node:assert/strict';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { randomId } from '../shared/ids.js';
import { hasUnpublished, taskAudience, taskAuditEvent, type ChunkRecord, type NewTargetRecord, type Store, type TaskRecord } from '../server/store/store.js';
import { targetRecord } from '../test/helpers/records.js';
import { nowMs } from './lib.js';

/** The seeded targets: name, the group that may use it, the agent that ran its tasks. */
const TARGETS = [
  { name: 'deploy-web', group: 'ops', agent: 'web-1' },
  { name: 'deploy-api', group: 'ops', agent: 'api-1' },
  { name: 'db-backup', group: 'db', agent: 'db-1' },
  { name: 'db-vacuum', group: 'db', agent: 'db-2' },
  { name: 'report-daily', group: 'dev', agent: 'api-1' },
  { name: 'rotate-logs', group: 'dev', agent: 'web-1' },
] as const;

/** The user whose task lists are measured besides an admin's: in group "dev", so they see the tasks of 2 of the 6 targets. */
export const MEMBER = { email: 'member@example.com', groups: ['dev'] };

/** Creators: 24 users, 8 in each group; the member is one of the "dev" ones. */
const CREATORS = Array.from({ length: 24 }, (_, k) => {
  const group = (['ops', 'db', 'dev'] as const)[k % 3]!;
  return { actor: k === 2 ? `user:${MEMBER.email}` : `user:u${k}@example.com`, group };
});

const SCRIPTS = [
  'systemctl restart nginx && curl -fsS localhost/healthz',
  './deploy.sh --env production --service api',
  'pg_dump -Fc orders > /backup/orders-$(date +%F).dump',
  'vacuumdb --all --analyze-in-stages',
  'python3 report.py --day yesterday --mail team@example.com',
  'find /var/log/app -name "*.log" -mtime +7 -delete && logrotate -f /etc/logrotate.conf',
];

/** Milliseconds between two seeded tasks: 1,000,000 of them span 11.6 days. */
const SPACING_MS = 1000;

/** A small deterministic generator (mulberry32): the same index gives the same task. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Output a task printed: `lines` ordinary log lines. */
function logLines(rnd: () => number, lines: number, index: number): string {
  const out: string[] = [];
  for (let k = 0; k < lines; k++) {
    const ms = Math.floor(rnd() * 400);
    out.push(`2026-11-${String(1 + (index % 28)).padStart(2, '0')}T03:${String(k % 60).padStart(2, '0')}:12Z level=info msg="step ${k} done" task=${index} took_ms=${ms} region=eu-west-1\r\n`);
  }
  return out.join('');
}

/** The seeded targets as records (uids fresh, so each run's are its own). */
export function historyTargets(time: Date): NewTargetRecord[] {
  return TARGETS.map((t) =>
    targetRecord(t.name, { uid: randomId(), type: 'sh', agent: t.agent, groups: [t.group], allowTypeOverride: true, created: time, updated: time }),
  );
}

/**
 * The `index`-th finished task of a history starting at `t0` (epoch ms), and
 * its output: 85 % successes, the rest failures with exit status 1; 4 to 40
 * log lines, stored as one chunk, or two past 1 KiB.
 */
export function historicTask(index: number, t0: number, uids: ReadonlyMap<string, string>): { task: TaskRecord; chunks: ChunkRecord[] } {
  const rnd = random(index + 1);
  const creator = CREATORS[Math.floor(rnd() * CREATORS.length)]!;
  const choices = TARGETS.filter((t) => t.group === creator.group);
  const target = choices[Math.floor(rnd() * choices.length)]!;
  const created = t0 + index * SPACING_MS;
  const ready = created + 3;
  const started = ready + 12;
  const finished = started + 200 + Math.floor(rnd() * 30_000);
  const ok = rnd() < 0.85;
  const text = Buffer.from(logLines(rnd, 4 + Math.floor(rnd() * 37), index));
  const id = ulid(created);
  const split = text.length > 1024 ? Math.floor(text.length / 2) : text.length;
  const chunks: ChunkRecord[] = [{ taskId: id, seq: 0, offset: 0, data: text.subarray(0, split) }];
  if (split < text.length) chunks.push({ taskId: id, seq: 1, offset: split, data: text.subarray(split) });
  const agent = `agent:${target.agent}`;
  const task: TaskRecord = {
    id,
    created: new Date(created),
    message: `scheduled run ${index}`,
    script: SCRIPTS[TARGETS.indexOf(target)]!,
    type: 'sh',
    target: target.name,
    targetUid: uids.get(target.name)!,
    status: ok ? 'success' : 'failure',
    createdBy: creator.actor,
    agent: target.agent,
    bootId: randomId(),
    started: new Date(started),
    finished: new Date(finished),
    exitCode: ok ? 0 : 1,
    signal: '',
    failureReason: ok ? '' : 'exit status 1',
    outputBytes: text.length,
    killRequested: null,
    timeoutSeconds: 0,
    outputDroppedBytes: 0,
    findings: {},
    createdByGroups: [creator.group],
    review: [],
    distinctReviewers: false,
    events: [
      { time: new Date(created), actor: creator.actor, action: 'task.created', from: null, to: 'created', reason: 'created' },
      { time: new Date(ready), actor: 'system', action: 'task.ready', from: 'created', to: 'ready', reason: 'no review required' },
      { time: new Date(started), actor: agent, action: 'task.running', from: 'ready', to: 'running', reason: 'handed to agent' },
      { time: new Date(finished), actor: agent, action: `task.${ok ? 'success' : 'failure'}`, from: 'running', to: ok ? 'success' : 'failure', reason: ok ? 'exit status 0' : 'exit status 1' },
    ],
    // Published: the audit records are written below, as the publisher would have.
    published: 4,
  };
  return { task, chunks };
}

/** The store's own rows for a batch of tasks, written in bulk: see {@link seedHistory}. */
interface BulkWriter {
  write(batch: readonly { task: TaskRecord; chunks: ChunkRecord[] }[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The embedded store's rows, as SqliteStore.insertTask, putChunk and
 * insertEvents write them, 5,000 tasks a transaction (the store commits
 * each call on its own: 900 tasks/s, 18 minutes for a million).
 */
function sqliteWriter(dataDir: string): BulkWriter {
  const db = new Database(join(dataDir, 'taskgate.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const task = db.prepare('INSERT INTO tasks (id, status, target, agent, doc, unpublished) VALUES (?, ?, ?, ?, ?, ?)');
  const audience = db.prepare('INSERT OR IGNORE INTO task_audience (key, task_id) VALUES (?, ?)');
  const chunk = db.prepare('INSERT INTO chunks (task_id, seq, offset, end_offset, data) VALUES (?, ?, ?, ?, ?)');
  const event = db.prepare('INSERT INTO events (id, time, actor, resource, doc) VALUES (?, ?, ?, ?, ?)');
  const write = db.transaction((batch: readonly { task: TaskRecord; chunks: ChunkRecord[] }[]) => {
    for (const { task: t, chunks } of batch) {
      task.run(t.id, t.status, t.target, t.agent, JSON.stringify(t), hasUnpublished(t) ? 1 : 0);
      for (const key of taskAudience(t)) audience.run(key, t.id);
      for (const c of chunks) chunk.run(c.taskId, c.seq, c.offset, c.offset + c.data.length, c.data);
      for (let i = 0; i < t.events.length; i++) {
        const e = taskAuditEvent(t, i);
        event.run(e.id, e.time.getTime(), e.actor, e.resource, JSON.stringify(e));
      }
    }
  });
  return {
    write: async (batch) => void write(batch),
    close: async () => void db.close(),
  };
}

/**
 * MongoStore's documents (its TaskDoc, ChunkDoc and EventDoc shapes), by
 * insertMany: one round trip per collection and batch where the store
 * makes one per document (110 tasks/s on FerretDB).
 */
async function mongoWriter(uri: string): Promise<BulkWriter> {
  const client = await MongoClient.connect(uri);
  const db = client.db(new URL(uri).pathname.slice(1) || 'taskgate');
  return {
    async write(batch) {
      const tasks = batch.map(({ task: { id, ...rest } }) => ({ _id: id, ...rest, outbox: hasUnpublished({ id, ...rest }), audience: taskAudience(rest) }));
      const chunks = batch.flatMap(({ chunks: cs }) => cs.map((c) => ({ _id: `${c.taskId}:${c.seq}`, taskId: c.taskId, seq: c.seq, offset: c.offset, end: c.offset + c.data.length, data: new Binary(c.data) })));
      const events = batch.flatMap(({ task }) => task.events.map((_, i) => {
        const { id, ...rest } = taskAuditEvent(task, i);
        return { _id: id, ...rest };
      }));
      await Promise.all([
        db.collection<{ _id: string }>('tasks').insertMany(tasks, { ordered: false }),
        db.collection<{ _id: string }>('chunks').insertMany(chunks, { ordered: false }),
        db.collection<{ _id: string }>('events').insertMany(events, { ordered: false }),
      ]);
    },
    close: () => client.close(),
  };
}

/**
 * Reads one seeded task back through the store: the same record, its
 * output, its audit events, and found by its audience. Guards the bulk
 * writers against a store whose rows or documents changed shape.
 */
async function verify(store: Store, { task, chunks }: { task: TaskRecord; chunks: ChunkRecord[] }): Promise<void> {
  deepStrictEqual(await store.getTask(task.id), task, 'a seeded task reads back differently through the store: bench/growth-history.ts writes rows the store no longer writes');
  const stored = await store.readChunks(task.id, { afterSeq: -1 }, 10);
  deepStrictEqual(Buffer.concat(stored.map((c) => c.data)), Buffer.concat(chunks.map((c) => c.data)), 'seeded output reads back differently');
  const events = await store.listEvents({ resource: `tasks/${task.id}`, limit: 10 });
  deepStrictEqual(events.length, task.events.length, 'seeded audit events are missing');
  const listed = await store.listTasks({ audience: [`by:${task.createdBy}`], beforeId: `${task.id}0`, limit: 1 });
  deepStrictEqual(listed[0]?.id, task.id, 'a seeded task is not listed by its audience');
}

/**
 * Stores tasks `from` to `from + count - 1` of the history, with their output
 * and audit events, into the store at `target` (its schema made, no server
 * on it), in bulk; then opens it with `open` and reads one back. Returns
 * the seconds the writes took and every 50th task id, for reads.
 */
export async function seedHistory(
  target: { dataDir: string } | { mongodbUri: string },
  from: number,
  count: number,
  t0: number,
  uids: ReadonlyMap<string, string>,
  open: () => Promise<Store>,
): Promise<{ seconds: number; ids: string[] }> {
  const started = nowMs();
  const ids: string[] = [];
  if (count === 0) return { seconds: 0, ids };
  const writer = 'dataDir' in target ? sqliteWriter(target.dataDir) : await mongoWriter(target.mongodbUri);
  const size = 'dataDir' in target ? 5000 : 500;
  let sample: { task: TaskRecord; chunks: ChunkRecord[] } | undefined;
  try {
    for (let at = from; at < from + count; at += size) {
      const batch = Array.from({ length: Math.min(size, from + count - at) }, (_, k) => historicTask(at + k, t0, uids));
      for (let k = 0; k < batch.length; k++) if ((at + k) % 50 === 0) ids.push(batch[k]!.task.id);
      sample ??= batch.find(({ chunks }) => chunks.length > 1);
      await writer.write(batch);
    }
  } finally {
    await writer.close();
  }
  const seconds = (nowMs() - started) / 1000;
  const store = await open();
  try {
    if (sample) await verify(store, sample);
  } finally {
    await store.close();
  }
  return { seconds, ids };
}
