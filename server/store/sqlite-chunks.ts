/**
 * The embedded store's output chunks (Store.putChunk and its kin): one row
 * per (task, seq) in the `chunks` table, with the chunk's raw offsets and
 * its bytes as packed (server/store/chunk-packing.ts). better-sqlite3 is
 * synchronous, so each method is one step of the event loop;
 * {@link SqliteChunks.stats} also runs inside the store's own transactions
 * (a task's end counts its output in the write that ends it).
 */
import type Database from 'better-sqlite3';
import { packChunk, unpackBatch, unpackChunk, type PackedChunk } from './chunk-packing.js';
import type { ChunkCursor, ChunkRecord } from './records.js';
import type { Prepare } from './sqlite-requests.js';

interface ChunkRow {
  task_id: string;
  seq: number;
  offset: number;
  end_offset: number;
  data: Buffer;
  encoding: number;
}

/** Output chunks in the `chunks` table. */
export class SqliteChunks {
  readonly #db: Database.Database;
  readonly #prepare: Prepare;

  constructor(db: Database.Database, prepare: Prepare) {
    this.#db = db;
    this.#prepare = prepare;
  }

  /** Store.putChunk. */
  put(chunk: ChunkRecord): void {
    this.#insert(chunk, packChunk(chunk.data));
  }

  /** Store.putChunkIfRunning. */
  putIfRunning(chunk: ChunkRecord): boolean {
    // Packed first, then one synchronous transaction: no status change can
    // come between the check and the insert.
    const packed = packChunk(chunk.data);
    const run = this.#db.transaction((): boolean => {
      const row = this.#prepare('SELECT status FROM tasks WHERE id = ?').get(chunk.taskId) as { status: string } | undefined;
      if (row?.status !== 'running') return false;
      this.#insert(chunk, packed);
      return true;
    });
    return run.immediate();
  }

  #insert(chunk: ChunkRecord, packed: PackedChunk): void {
    this.#prepare('INSERT OR IGNORE INTO chunks (task_id, seq, offset, end_offset, data, encoding) VALUES (?, ?, ?, ?, ?, ?)')
      .run(chunk.taskId, chunk.seq, chunk.offset, chunk.offset + chunk.data.length, packed.data, packed.encoding);
  }

  /** Store.readChunks. */
  read(taskId: string, cursor: ChunkCursor, limit: number, maxBytes: number): ChunkRecord[] {
    const rows =
      'afterSeq' in cursor
        ? this.#prepare('SELECT * FROM chunks WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?').iterate(taskId, cursor.afterSeq, limit)
        : this.#prepare('SELECT * FROM chunks WHERE task_id = ? AND end_offset > ? ORDER BY seq LIMIT ?').iterate(taskId, cursor.fromOffset, limit);
    // Row by row, so no more than maxBytes (plus one chunk) is ever read.
    const found: ChunkRow[] = [];
    let bytes = 0;
    for (const row of rows as IterableIterator<ChunkRow>) {
      found.push(row);
      bytes += row.end_offset - row.offset;
      if (bytes >= maxBytes) break;
    }
    return unpackBatch(found, (row) => ({
      taskId: row.task_id,
      seq: row.seq,
      offset: row.offset,
      data: unpackChunk(row.data, row.encoding, row.end_offset - row.offset, { taskId: row.task_id, seq: row.seq, offset: row.offset }),
    }));
  }

  /** Store.chunkStats: how many chunks and raw bytes a task has stored. */
  stats(taskId: string): { chunks: number; bytes: number } {
    const row = this.#prepare('SELECT COUNT(*) AS chunks, COALESCE(SUM(end_offset - offset), 0) AS bytes FROM chunks WHERE task_id = ?')
      .get(taskId) as { chunks: number; bytes: number };
    return { chunks: row.chunks, bytes: row.bytes };
  }
}
