/**
 * The MongoDB store's output chunks (Store.putChunk and its kin): one
 * document per (task, seq) in `chunks`, `_id` "TASK:SEQ", with the chunk's
 * raw offsets and its bytes as packed (server/store/chunk-packing.ts).
 */
import { Binary, type Collection, type Filter } from 'mongodb';
import { ChunkEncoding, packChunk, unpackBatch } from './chunk-packing.js';
import { isDuplicateKey, toChunk, type ChunkDoc, type TaskDoc } from './mongo-docs.js';
import type { ChunkCursor, ChunkRecord } from './records.js';

/** Output chunks in the `chunks` collection. */
export class MongoChunks {
  readonly #chunks: Collection<ChunkDoc>;
  readonly #tasks: Collection<TaskDoc>;

  constructor(chunks: Collection<ChunkDoc>, tasks: Collection<TaskDoc>) {
    this.#chunks = chunks;
    this.#tasks = tasks;
  }

  /** Store.putChunk: a chunk already there (same task and seq) is kept as it is. */
  async put(chunk: ChunkRecord): Promise<void> {
    const packed = packChunk(chunk.data);
    try {
      await this.#chunks.insertOne({
        _id: `${chunk.taskId}:${chunk.seq}`,
        taskId: chunk.taskId,
        seq: chunk.seq,
        offset: chunk.offset,
        end: chunk.offset + chunk.data.length,
        data: new Binary(packed.data),
        ...(packed.encoding === ChunkEncoding.RAW ? {} : { encoding: packed.encoding }),
      });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  /** Store.putChunkIfRunning. */
  async putIfRunning(chunk: ChunkRecord): Promise<boolean> {
    // Not atomic with a status change made meanwhile by another replica (no
    // transactions here); the session that stores a task's output is also
    // the one that finishes it, one message at a time, so only another
    // replica giving the task up can fall between the check and the insert.
    const task = await this.#tasks.findOne({ _id: chunk.taskId }, { projection: { status: 1 } });
    if (task?.status !== 'running') return false;
    await this.put(chunk);
    return true;
  }

  /** Store.readChunks. */
  async read(taskId: string, cursor: ChunkCursor, limit: number, maxBytes: number): Promise<ChunkRecord[]> {
    const filter: Filter<ChunkDoc> =
      'afterSeq' in cursor ? { taskId, seq: { $gt: cursor.afterSeq } } : { taskId, end: { $gt: cursor.fromOffset } };
    // Small batches, stopped at maxBytes: a reader never holds much more.
    const found = this.#chunks.find(filter).sort({ seq: 1 }).limit(limit).batchSize(Math.min(limit, 16));
    const docs: ChunkDoc[] = [];
    let bytes = 0;
    try {
      for await (const doc of found) {
        docs.push(doc);
        bytes += doc.end - doc.offset;
        if (bytes >= maxBytes) break;
      }
    } finally {
      await found.close();
    }
    return unpackBatch(docs, toChunk);
  }

  /** Store.chunkStats. */
  async stats(taskId: string): Promise<{ chunks: number; bytes: number }> {
    // Chunks are stored contiguously from offset 0, so the bytes are the
    // last chunk's end. (FerretDB v1's $group cannot $sum a field.)
    const [chunks, last] = await Promise.all([
      this.#chunks.countDocuments({ taskId }),
      this.#chunks.findOne({ taskId }, { sort: { seq: -1 }, projection: { end: 1 } }),
    ]);
    return { chunks, bytes: last?.end ?? 0 };
  }
}
