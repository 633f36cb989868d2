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
import { brotliDecompressSync } from 'node:zlib';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { TaskStatus, type GetTaskLogsResponse } from '../../gen/taskgate/v1/task.js';
import { ChunkEncoding, packChunk, unpackChunk } from '../../server/store/chunk-packing.js';
import { openStore } from '../../server/store/open-store.js';
import { MAX_CHUNK_BYTES } from '../../shared/limits.js';
import type { Store } from '../../server/store/store.js';
import { DataLossError } from '../../shared/errors.js';
import { Harness } from '../helpers/harness.js';
import { taskRecord } from '../helpers/records.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

/** A line the server logged, parsed. */
interface LogLine {
  level: number;
  msg: string;
}

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

/** How many bytes a brotli stream decodes to; -1 when it does not decode. */
function decodedLength(stream: Buffer): number {
  try {
    return brotliDecompressSync(stream).length;
  } catch {
    return -1;
  }
}

/** A stored chunk's bytes as the store holds them. */
async function storedData(location: StoreLocation, taskId: string, seq: number): Promise<Buffer> {
  if (location.options.mongodbUri) {
    const client = await MongoClient.connect(location.options.mongodbUri);
    try {
      const doc = await client.db(mongoDbName(location)).collection('chunks').findOne({ taskId, seq });
      return Buffer.from((doc!.data as { buffer: Uint8Array }).buffer);
    } finally {
      await client.close();
    }
  }
  const db = new Database(join(location.options.dataDir!, 'taskgate.db'), { readonly: true });
  try {
    return (db.prepare('SELECT data FROM chunks WHERE task_id = ? AND seq = ?').get(taskId, seq) as { data: Buffer }).data;
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

    it('never serves a packed chunk that one flipped bit changed: its checksum refuses it', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      const log = accessLog(65536);
      await store.putChunk({ taskId: t.id, seq: 0, offset: 0, data: log });
      const stored = await storedData(location, t.id, 0);
      // Every flip of a bit past the checksum that still decodes to the
      // chunk's length (brotli has no checksum: many do, to other bytes).
      let decodedWrong = 0;
      for (let bit = 32; bit < stored.length * 8; bit += 13) {
        const d = Buffer.from(stored);
        d[bit >> 3]! ^= 1 << (bit & 7);
        const read = (() => {
          try {
            return unpackChunk(d, ChunkEncoding.BROTLI, log.length, { taskId: t.id, seq: 0, offset: 0 });
          } catch (err) {
            expect(err).to.be.instanceOf(DataLossError);
            return null;
          }
        })();
        expect(read === null || read.equals(log), `bit ${bit}: altered bytes served`).to.equal(true);
        if (read === null && decodedLength(d.subarray(4)) === log.length) decodedWrong += 1;
      }
      expect(decodedWrong, 'some flips decode to the right length: only the checksum catches them').to.be.above(0);
      // Through the store too.
      const d = Buffer.from(stored);
      d[stored.length >> 1]! ^= 0x10;
      await damage(location, t.id, 0, d);
      expect(await store.readChunks(t.id, { afterSeq: -1 }, 10).then(() => null, (e: unknown) => e)).to.be.instanceOf(DataLossError);
    });

    it('refuses a packed chunk that decodes cleanly to fewer bytes than its offsets say', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      await store.putChunk({ taskId: t.id, seq: 0, offset: 0, data: accessLog(20_000) });
      const shorter = packChunk(accessLog(19_000));
      expect(shorter.encoding).to.equal(ChunkEncoding.BROTLI);
      await damage(location, t.id, 0, shorter.data);
      const err = (await store.readChunks(t.id, { afterSeq: -1 }, 10).then(() => null, (e: unknown) => e)) as Error;
      expect(err).to.be.instanceOf(DataLossError);
      expect(err.message).to.equal(
        `stored output of task ${t.id} is damaged at chunk 0 (bytes 0-20000): it decompresses to 19000 bytes where its offsets say 20000; read from offset 20000 to skip it`,
      );
    });

    it('returns the intact chunks before a damaged one, and refuses the damaged one when a read starts at it', async () => {
      const t = taskRecord({ status: 'running' });
      await store.insertTask(t);
      const parts = [0, 1, 2, 3].map((i) => accessLog(8192, i + 10));
      for (const [seq, data] of parts.entries()) await store.putChunk({ taskId: t.id, seq, offset: seq * 8192, data });
      await damage(location, t.id, 2, Buffer.from('not brotli at all, not at all'));
      const first = await store.readChunks(t.id, { afterSeq: -1 }, 10);
      expect(first.map((c) => c.seq)).to.deep.equal([0, 1]);
      expect(Buffer.concat(first.map((c) => c.data)).equals(Buffer.concat(parts.slice(0, 2)))).to.equal(true);
      const err = (await store.readChunks(t.id, { afterSeq: 1 }, 10).then(() => null, (e: unknown) => e)) as Error;
      expect(err).to.be.instanceOf(DataLossError);
      expect(err.message).to.match(/damaged at chunk 2 \(bytes 16384-24576\).*read from offset 24576 to skip it$/);
      // Past it, the rest reads.
      expect((await store.readChunks(t.id, { fromOffset: 24576 }, 10)).map((c) => c.seq)).to.deep.equal([3]);
    });

    it('refuses, before decoding, a packed chunk whose offsets claim more than the chunk limit, and an encoding it does not know', async () => {
      expect(() => unpackChunk(Buffer.alloc(10), ChunkEncoding.BROTLI, MAX_CHUNK_BYTES + 1, { taskId: 'T', seq: 4, offset: 0 })).to.throw(
        DataLossError,
        `stored output of task T is damaged at chunk 4 (bytes 0-${MAX_CHUNK_BYTES + 1}): its offsets give it ${MAX_CHUNK_BYTES + 1} bytes, past the ${MAX_CHUNK_BYTES}-byte chunk limit; read from offset ${MAX_CHUNK_BYTES + 1} to skip it`,
      );
      expect(() => unpackChunk(Buffer.alloc(10), 7, 10, { taskId: 'T', seq: 4, offset: 100 })).to.throw(DataLossError, 'it is in encoding 7, which this version of Taskgate cannot read (written by a newer one?)');
      expect(() => unpackChunk(Buffer.alloc(10), ChunkEncoding.RAW, 11, { taskId: 'T', seq: 4, offset: 100 })).to.throw(DataLossError, 'it holds 10 bytes where its offsets say 11');
    });
  });

  describe(`a damaged stored chunk through the API: ${kind.name}`, function () {
    let h: Harness;
    const lines: LogLine[] = [];
    let location: StoreLocation;
    let dir: string;

    beforeEach(async function () {
      const loc = await kind.location();
      if (!loc) this.skip();
      location = loc;
      dir = mkdtempSync(join(tmpdir(), 'taskgate-packing-'));
      chmodSync(dir, 0o711); // agent work dirs inside: tasks run as users of their own
      lines.length = 0;
      h = await Harness.start(location, { httpListen: '127.0.0.1:0', logger: pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }) });
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

    it('delivers the intact output before a damaged chunk, then DATA_LOSS naming the bytes to skip, and logs it for the operator', async () => {
      const t = taskRecord({ status: 'success' });
      await h.store.insertTask(t);
      const parts = [0, 1, 2, 3].map((i) => accessLog(8192, i + 10));
      for (const [seq, data] of parts.entries()) await h.store.putChunk({ taskId: t.id, seq, offset: seq * 8192, data });
      await damage(location, t.id, 2, Buffer.from('not brotli at all, not at all'));
      const call = h.api.tasks.getTaskLogs({ id: t.id, offset: 0, follow: false, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
      const got: Buffer[] = [];
      let err: (Error & { code?: number; details?: string }) | null = null;
      try {
        for await (const m of call as AsyncIterable<GetTaskLogsResponse>) if (m.event?.$case === 'chunk') got.push(Buffer.from(m.event.value.data));
      } catch (e) {
        err = e as Error;
      }
      expect(err?.code, String(err)).to.equal(15); // DATA_LOSS
      expect(Buffer.concat(got).equals(Buffer.concat(parts.slice(0, 2))), 'bytes 0-16383 delivered as stored').to.equal(true);
      expect(err?.details).to.match(/damaged at chunk 2 \(bytes 16384-24576\).*read from offset 24576 to skip it$/);
      // What it says works: the rest reads from there.
      const rest = await h.logs(t.id, { follow: false, offset: 24576 });
      expect(rest.output.equals(parts[3]!)).to.equal(true);
      expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).to.include('stored data could not be read; the call ends DATA_LOSS');
    });

    it('refuses a console download of output damaged at its start with 500 data_loss and the line, not a cut connection', async () => {
      const t = taskRecord({ status: 'success' });
      await h.store.insertTask(t);
      const parts = [0, 1].map((i) => accessLog(8192, i + 20));
      for (const [seq, data] of parts.entries()) await h.store.putChunk({ taskId: t.id, seq, offset: seq * 8192, data });
      await damage(location, t.id, 0, Buffer.from('not brotli at all, not at all'));
      const res = await fetch(`${h.server.httpUrl!}/download/tasks/${t.id}/output`, { headers: { authorization: `Bearer ${h.adminToken}` } });
      expect(res.status).to.equal(500);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).to.equal('data_loss');
      expect(body.message).to.match(new RegExp(`^stored output of task ${t.id} is damaged at chunk 0 \\(bytes 0-8192\\)`));
      expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).to.include('stored data could not be read; the request ends DATA_LOSS');
    });
  });
}
