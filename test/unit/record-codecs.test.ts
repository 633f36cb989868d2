import { expect } from 'chai';
import {
  agentCodec,
  deliveryCodec,
  eventCodec,
  RecordVersionError,
  requestCodec,
  targetCodec,
  taskCodec,
  tokenCodec,
  userCodec,
  type StoredDoc,
} from '../../server/store/record-codecs.js';
import type { TaskRecord } from '../../server/store/store.js';
import { OLD_DOCS, readyTaskRecord, targetRecord, withBsonDates } from '../helpers/records.js';

const d = (iso: string): Date => new Date(iso);

/** Any kind's codec, to go over them all. */
interface AnyCodec {
  kind: string;
  version: number;
  encode(record: never): unknown;
  decode(doc: StoredDoc): unknown;
}

/** Both forms a store hands a codec: the embedded store's parsed JSON, and a BSON document's fields. */
function forms(json: string): Array<[string, StoredDoc]> {
  return [
    ['JSON', JSON.parse(json) as StoredDoc],
    ['BSON', withBsonDates(json)],
  ];
}

/** A deep copy that throws on any write, so a decode that changes its input fails. */
function frozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    for (const v of Object.values(value)) frozen(v);
    Object.freeze(value);
  }
  return value;
}

describe('record codecs', () => {
  describe('records of the first release (ded7a63)', () => {
    for (const [form, doc] of forms(OLD_DOCS.first.task)) {
      it(`reads a task in the current shape (${form})`, () => {
        const task = taskCodec.decode(frozen(doc));
        expect(task).to.deep.equal({
          id: '01JFIRST000000000000000001',
          created: d('2026-11-28T09:00:00.000Z'),
          message: 'm',
          script: 'true',
          type: 'bash',
          target: 't1',
          status: 'success',
          createdBy: 'user:admin',
          agent: 'a1',
          bootId: 'b1',
          started: d('2026-11-28T09:00:01.000Z'),
          finished: d('2026-11-28T09:00:02.000Z'),
          exitCode: 0,
          signal: '',
          failureReason: '',
          outputBytes: 5,
          // Filled: what the first release behaved as.
          review: [],
          killRequested: null,
          timeoutSeconds: 0,
          outputDroppedBytes: 0,
          findings: {},
          createdByGroups: [],
          // Its events were published as they happened (there was no outbox).
          published: 4,
          events: [
            { time: d('2026-11-28T09:00:00.000Z'), actor: 'user:admin', action: 'task.created', from: null, to: 'created', reason: 'created' },
            { time: d('2026-11-28T09:00:00.500Z'), actor: 'system', action: 'task.ready', from: 'created', to: 'ready', reason: 'no review required' },
            { time: d('2026-11-28T09:00:01.000Z'), actor: 'agent:a1', action: 'task.running', from: 'ready', to: 'running', reason: 'handed to agent' },
            { time: d('2026-11-28T09:00:02.000Z'), actor: 'agent:a1', action: 'task.success', from: 'running', to: 'success', reason: 'exit 0' },
          ],
        } satisfies TaskRecord);
      });
    }

    for (const [form, doc] of forms(OLD_DOCS.first.target)) {
      it(`reads a target with every later field at the value that release behaved as (${form})`, () => {
        expect(targetCodec.decode(frozen(doc))).to.deep.equal({
          name: 't1',
          type: 'bash',
          agent: 'a1',
          message: '',
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
          created: d('2026-11-28T08:00:00.000Z'),
          updated: d('2026-11-28T08:30:00.000Z'),
        });
      });
    }

    it('reads an agent with no session to resume, and a token made by the system, never revoked', () => {
      for (const [, doc] of forms(OLD_DOCS.first.agent)) {
        expect(agentCodec.decode(frozen(doc))).to.deep.equal({
          name: 'a1',
          version: '0.1.0',
          bootId: 'b1',
          lastSeen: d('2026-11-28T09:00:02.000Z'),
          connected: false,
          tokenId: '',
          secretHashes: [],
        });
      }
      for (const [, doc] of forms(OLD_DOCS.first.token)) {
        expect(tokenCodec.decode(frozen(doc))).to.deep.equal({
          id: 'tok1',
          hash: 'h1',
          kind: 'agent',
          subject: 'a1',
          name: '',
          created: d('2026-11-28T08:00:00.000Z'),
          createdBy: 'system',
          revoked: null,
        });
      }
    });
  });

  describe('records of releases in between', () => {
    it('keeps what a record has and fills only what it lacks', () => {
      const task = taskCodec.decode(frozen(JSON.parse(OLD_DOCS.between.task) as StoredDoc));
      expect([task.killRequested, task.timeoutSeconds, task.published, task.findings, task.createdByGroups]).to.deep.equal([
        d('2026-11-28T12:00:05.000Z'),
        60,
        1,
        {},
        [],
      ]);
      const target = targetCodec.decode(frozen(JSON.parse(OLD_DOCS.between.target) as StoredDoc));
      expect([target.runAs, target.reviewers, target.allowTypeOverride, target.distinctReviewers]).to.deep.equal(['postgres', ['dba', 'sre'], false, true]);
      const token = tokenCodec.decode(frozen(JSON.parse(OLD_DOCS.between.token) as StoredDoc));
      expect(token).to.deep.equal({ id: 'tok2', hash: 'h2', kind: 'user', subject: 'a@x', name: 'cli', created: d('2026-11-28T08:00:00.000Z'), createdBy: 'user:admin', revoked: null });
    });
  });

  describe('records of the last release without versions (3f54d5f)', () => {
    it('reads each kind with its dates, and nothing else, as dates', () => {
      const docs = OLD_DOCS.latest;
      const target = targetCodec.decode(frozen(JSON.parse(docs.target) as StoredDoc));
      // That release read these back as Invalid Date: its reviver went by key name, anywhere in the document.
      expect(target.secretMapping).to.deep.equal({ time: 'T', created: 'C', PGPASS: 'pass' });
      expect([target.created, target.updated, target.uid]).to.deep.equal([d('2026-12-01T10:00:00.000Z'), d('2026-12-01T10:01:00.000Z'), 'u1']);
      const task = taskCodec.decode(frozen(JSON.parse(docs.task) as StoredDoc));
      expect(task.review[0]?.time).to.deep.equal(d('2026-12-01T10:02:00.000Z'));
      expect([task.killRequested, task.started, task.finished, task.events.at(-1)?.time]).to.deep.equal([
        d('2026-12-01T10:05:00.000Z'),
        d('2026-12-01T10:04:00.000Z'),
        d('2026-12-01T10:06:00.000Z'),
        d('2026-12-01T10:06:00.000Z'),
      ]);
      expect([task.findings, task.targetUid, task.requestId, task.published, task.events.length]).to.deep.equal([{ EMAIL: 2 }, 'u1', 'req-1', 0, 6]);
      const token = tokenCodec.decode(frozen(JSON.parse(docs.token) as StoredDoc));
      expect([token.revoked, token.expires, token.lastUsed]).to.deep.equal([d('2026-12-01T10:08:00.000Z'), d('2026-12-02T10:00:00.000Z'), d('2026-12-01T10:07:00.000Z')]);
      expect(agentCodec.decode(JSON.parse(docs.agent) as StoredDoc).lastSeen).to.deep.equal(d('2026-12-01T10:06:00.000Z'));
      expect(userCodec.decode(JSON.parse(docs.user) as StoredDoc).updated).to.deep.equal(d('2026-12-01T10:01:00.000Z'));
      expect(eventCodec.decode(JSON.parse(docs.event) as StoredDoc).time).to.deep.equal(d('2026-12-01T10:00:00.000Z'));
      expect(deliveryCodec.decode(JSON.parse(docs.delivery) as StoredDoc).nextAttempt).to.deep.equal(d('2026-12-01T10:09:00.000Z'));
      expect(requestCodec.decode(JSON.parse(docs.request) as StoredDoc).expires).to.deep.equal(d('2026-12-01T11:00:00.000Z'));
    });
  });

  describe('current records', () => {
    const now = new Date(1_700_000_000_123);
    const samples: Array<[AnyCodec, unknown]> = [
      [taskCodec, readyTaskRecord({ killRequested: now, review: [{ group: 'g', status: 'approved', reviewer: 'user:x', time: now, comment: '' }] })],
      [targetCodec, targetRecord('t', { uid: 'u', secretMapping: { created: 'c', lastSeen: 'l' } })],
      [agentCodec, { name: 'a', version: '1', bootId: 'b', lastSeen: now, connected: true, tokenId: 't', secretHashes: ['h'] }],
      [userCodec, { email: 'a@x', name: 'a', groups: [], active: true, created: now, updated: now }],
      [tokenCodec, { id: 't', hash: 'h', kind: 'session', subject: 'a@x', name: '', created: now, createdBy: 'system', revoked: null, expires: now, lastUsed: null, parent: 'p' }],
      [eventCodec, { id: 'e', time: now, actor: 'system', action: 'x', resource: 'tasks/1', from: '', to: '', detail: '' }],
      [deliveryCodec, { id: 'h:e', hook: 'h', eventId: 'e', body: '{}', state: 'pending', attempts: 0, nextAttempt: now, lastError: '', created: now }],
      [requestCodec, { caller: 'user:a@x', requestId: 'r', method: 'RunTask', hash: 'x', taskId: '1', created: now, expires: now, done: false }],
    ];

    for (const [codec, record] of samples) {
      it(`writes ${codec.kind} records with their version and reads them back unchanged, through JSON and as BSON holds them`, () => {
        const stored = codec.encode(frozen(record) as never) as StoredDoc;
        expect(stored.v).to.equal(codec.version).and.to.be.greaterThan(0);
        expect(codec.decode(JSON.parse(JSON.stringify(stored)) as StoredDoc)).to.deep.equal(record);
        expect(codec.decode(frozen(structuredClone(stored)))).to.deep.equal(record);
      });
    }

    it('refuses a record of a newer version, naming it, instead of reading it as one it knows', () => {
      const newer = { ...taskCodec.encode(readyTaskRecord({ id: 'T1' })), v: taskCodec.version + 1, outcome: { renamed: 'fields' } };
      expect(() => taskCodec.decode(newer))
        .to.throw(RecordVersionError, `stored task "T1" was written by a newer Taskgate (record version ${taskCodec.version + 1}; this one reads task records up to version ${taskCodec.version})`);
      expect(() => targetCodec.decode({ ...targetCodec.encode(targetRecord('db')), v: 99 })).to.throw(RecordVersionError, 'stored target "db" was written by a newer Taskgate');
      expect(() => userCodec.decode({ email: 'a@x', v: '1' })).to.throw(RecordVersionError, 'stored user "a@x" has no readable record version ("1")');
    });
  });
});
