/**
 * Output stored compressed where it pays (server/store/chunk-packing.ts),
 * on both stores: every byte reads back as it was written, offsets and
 * counts stay in raw bytes, chunks stored before packing still read, and a
 * damaged packed chunk fails the read with DATA_LOSS and a line naming the
 * task and chunk, while the server goes on.
 */
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MongoClient } from 'mongodb';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { openStore } from '../../server/store/open-store.js';
import type { Store } from '../../server/store/store.js';
import { DataLossError } from '../../shared/errors.js';
import { Harness } from '../helpers/harness.js';
import { taskRecord } from '../helpers/records.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

/** `bytes` of an ordinary access log (each line differs: ids, times, sizes). */
function accessLog(bytes: number, seed = 1): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const n = (i * 7919 + seed * 104_729) % 1_000_003;
    const line = `2026-12-03T18:${String(i % 60).padStart(2, '0')}:00.${String(n % 1000).padStart(3, '0')}Z level=info msg="request served" path=/api/v1/orders/${n} status=${[200, 201, 404][n % 3]} took_ms=${n % 300} trace=${n.toString(16).padStart(8, '0')}\r\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** What a store holds for a task's chunks: stored bytes and encoding of each, read behind the store's back. */
async function storedChunks(location: StoreLocation, taskId: string): Promise<Array<{ seq: number; bytes: number; encoding: number }>> {
  if (location.options.mongodbUri) {
    const client = await MongoClient.connect(location.options.mongodbUri);
    try {
      const docs = await client.db(mongoDbName(location)).collection('chunks').find({ taskId }).sort({ seq: 1 }).toArray();
      return docs.map((d) => ({ seq: d.seq as number, bytes: (d.data as { length(): number }).length(), encoding: (d.encoding as number | undefined) ?? 0 }));
    } finally {
      await client.close();
    }
  }
  const db = new Database(join(location.options.dataDir!, 'taskgate.db'), { readonly: true });
  try {
    return db.prepare('SELECT seq, length(data) AS bytes, encoding FROM chunks WHERE task_id = ? ORDER BY seq').all(taskId) as Array<{ seq: number; bytes: number; encoding: number }>;
  } finally {
    db.close();
  }
}

function mongoDbName(location: StoreLocation): string {
  return new URL(location.options.mongodbUri!).pathname.slice(1) || 'taskgate';
}

/** Overwrites a stored chunk's bytes, as a damaged disk or a hand edit would. */
async function damage(location: StoreLocation, taskId: string, seq: number, data: Buffer): Promise<void> {
  if (location.options.mongodbUri) {
    const client = await MongoClient.connect(location.options.mongodbUri);
    try {
      await client.db(mongoDbName(location)).collection('chunks').updateOne({ taskId, seq }, { $set: { data } });
    } finally {
      await client.close();
    }
    return;
  }
  const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare('UPDATE chunks SET data = ? WHERE task_id = ? AND seq = ?').run(data, taskId, seq);
  } finally {
    db.close();
  }
}

for (const kind of STORE_KINDS) {
  describe(`stored output packing: ${kind.name}`, function () {
    let location: StoreLocation;
    let store: Store;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      store = await openStore(location.options);
    });

    afterEach(async () => {
      await store?.close();
      location?.cleanup();
    });

    it('stores ordinary logs packed, reads every byte back, and keeps offsets and counts in raw bytes', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      const log = accessLog(3 * 65536 + 500);
      const random = randomBytes(4096);
      const parts = [log.subarray(0, 65536), log.subarray(65536, 131072), Buffer.from('ok\r\n'), random, log.subarray(131072)];
      let offset = 0;
      for (const [seq, data] of parts.entries()) {
        expect(await store.putChunkIfRunning({ taskId: t.id, seq, offset, data })).to.equal(true);
        offset += data.length;
      }
      const all = Buffer.concat(parts);
      expect(await store.chunkStats(t.id)).to.deep.equal({ chunks: parts.length, bytes: all.length });

      const back = await store.readChunks(t.id, { afterSeq: -1 }, 100);
      expect(back.map((c) => c.offset)).to.deep.equal(parts.map((_, i) => parts.slice(0, i).reduce((n, p) => n + p.length, 0)));
      expect(Buffer.concat(back.map((c) => c.data)).equals(all), 'every byte as written').to.equal(true);

      const stored = await storedChunks(location, t.id);
      expect(stored.map((c) => c.encoding), 'logs packed; 4 bytes and random bytes raw').to.deep.equal([1, 1, 0, 0, 1]);
      const logStored = stored.filter((c) => c.encoding === 1).reduce((n, c) => n + c.bytes, 0);
      const logRaw = parts[0]!.length + parts[1]!.length + parts[4]!.length;
      expect(logStored / logRaw, 'ordinary logs shrink to well under half').to.be.below(0.4);
      expect(stored[3]!.bytes).to.equal(random.length);
    });

    it('reads from an offset inside a packed chunk, and bounds a read by raw bytes', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      const log = accessLog(4 * 65536);
      for (let seq = 0; seq < 4; seq++) await store.putChunk({ taskId: t.id, seq, offset: seq * 65536, data: log.subarray(seq * 65536, (seq + 1) * 65536) });
      const from = await store.readChunks(t.id, { fromOffset: 65536 + 100 }, 100);
      expect(from.map((c) => c.seq)).to.deep.equal([1, 2, 3]);
      expect(from[0]!.data.equals(log.subarray(65536, 131072))).to.equal(true);
      // 1.5 chunks of raw bytes: two chunks, though their packed bytes are far fewer.
      expect((await store.readChunks(t.id, { afterSeq: -1 }, 100, 65536 * 1.5)).map((c) => c.seq)).to.deep.equal([0, 1]);
      // A repeat of a stored seq stores nothing and changes nothing.
      await store.putChunk({ taskId: t.id, seq: 1, offset: 65536, data: Buffer.alloc(65536, 'x') });
      expect((await store.readChunks(t.id, { afterSeq: 0 }, 1))[0]!.data.equals(log.subarray(65536, 131072))).to.equal(true);
    });

    it('reads chunks stored before packing existed, and packs new ones beside them', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      const old = accessLog(8192, 2);
      await store.close();
      if (location.options.mongodbUri) {
        // An older Taskgate's document: no encoding field.
        const client = await MongoClient.connect(location.options.mongodbUri);
        await client.db(mongoDbName(location)).collection('chunks').insertOne({ _id: `${t.id}:0` as never, taskId: t.id, seq: 0, offset: 0, end: old.length, data: old });
        await client.close();
      } else {
        // An older Taskgate's table: no encoding column.
        const db = new Database(join(location.options.dataDir!, 'taskgate.db'));
        db.exec(`DROP TABLE chunks;
          CREATE TABLE chunks (task_id TEXT NOT NULL, seq INTEGER NOT NULL, offset INTEGER NOT NULL, end_offset INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (task_id, seq));`);
        db.prepare('INSERT INTO chunks (task_id, seq, offset, end_offset, data) VALUES (?, 0, 0, ?, ?)').run(t.id, old.length, old);
        db.close();
      }
      store = await openStore(location.options);
      const next = accessLog(8192, 3);
      await store.putChunk({ taskId: t.id, seq: 1, offset: old.length, data: next });
      const back = await store.readChunks(t.id, { afterSeq: -1 }, 10);
      expect(Buffer.concat(back.map((c) => c.data)).equals(Buffer.concat([old, next]))).to.equal(true);
      expect((await storedChunks(location, t.id)).map((c) => c.encoding)).to.deep.equal([0, 1]);
    });

    it('refuses a packed chunk that does not decode to its length, with DataLossError naming the task and chunk', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      const log = accessLog(20_000);
      await store.putChunk({ taskId: t.id, seq: 0, offset: 0, data: log });
      await damage(location, t.id, 0, Buffer.from('not brotli at all, not at all'));
      const err = await store.readChunks(t.id, { afterSeq: -1 }, 10).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(DataLossError);
      expect((err as Error).message).to.include(t.id).and.include('chunk 0');
    });
  });

  describe(`a damaged stored chunk through the API: ${kind.name}`, function () {
    let h: Harness;
    let location: StoreLocation;
    let dir: string;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      dir = mkdtempSync(join(tmpdir(), 'taskgate-packing-'));
      chmodSync(dir, 0o711); // agent work dirs inside: tasks run as users of their own
      h = await Harness.start(location);
    });

    afterEach(async () => {
      await h?.close();
      location?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("stores a task's output packed; a damaged chunk ends GetTaskLogs with DATA_LOSS and the server goes on", async () => {
      await h.createTarget('logs', 'a1');
      await h.startAgent('a1', { workDir: join(dir, 'a1') });
      // 2,000 numbered lines: about 13 KB, compressible.
      const t = await h.createTask('logs', 'seq 1 2000');
      const done = await h.finished(t.id);
      expect(done.task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const expected = Array.from({ length: 2000 }, (_, i) => `${i + 1}\r\n`).join('');
      expect(done.output.toString()).to.equal(expected);
      const stored = await storedChunks(location, t.id);
      expect(stored.some((c) => c.encoding === 1), `some chunk packed: ${JSON.stringify(stored)}`).to.equal(true);
      expect(stored.reduce((n, c) => n + c.bytes, 0)).to.be.below(expected.length / 2);

      const packed = stored.find((c) => c.encoding === 1)!;
      await damage(location, t.id, packed.seq, Buffer.from([0xff, 0x00, 0x13, 0x37]));
      const err = await h.logs(t.id, { follow: false }).then(
        () => null,
        (e: unknown) => e as Error & { code?: number; details?: string },
      );
      expect(err?.code, String(err)).to.equal(15); // DATA_LOSS
      expect(err?.details).to.match(new RegExp(`stored output of task ${t.id} is damaged at chunk ${packed.seq}`));
      // One line, no stack.
      expect(err?.details).not.to.include('\n');
      expect((await h.getTask(t.id)).status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const other = await h.createTask('logs', 'echo still here');
      expect((await h.finished(other.id)).output.toString()).to.equal('still here\r\n');
    });
  });
}
