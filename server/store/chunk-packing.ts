/**
 * Output chunks are stored compressed where it pays (issue 18; measured in
 * bench/compression.ts and docs/benchmarks.md "Compressed output"). Both
 * stores call these two functions, so a chunk is packed and unpacked the
 * same way whatever holds it.
 *
 * - Brotli at quality 1: ordinary logs shrink to 0.17–0.23 of their size
 *   for 250–450 MB/s of CPU, faster and smaller than deflate at level 1.
 * - A chunk shorter than {@link MIN_PACKED_BYTES} is kept raw (a few bytes
 *   of `echo` output gain nothing), and so is one that shrinks by less than
 *   a tenth (already compressed or random data).
 * - Offsets stay in raw bytes, so range reads, chunk stats and the resume
 *   protocol do not change; a chunk's raw length is its end offset minus its
 *   offset, and unpacking checks it.
 * - Both run on the event loop, about 0.25 ms to pack and 0.15 ms to unpack
 *   a 64 KiB chunk: zlib's asynchronous calls (on the thread pool) cost
 *   1.7–2× the CPU here, in stream machinery per call. Unpacking writes into
 *   one buffer of the chunk's raw length (zlib's default 16 KiB pieces are
 *   then joined).
 */
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { DataLossError } from '../../shared/errors.js';
import { MAX_CHUNK_BYTES } from '../../shared/limits.js';

/** How a stored chunk's bytes are encoded (the `encoding` column; absent in MongoDB documents: raw). */
export const ChunkEncoding = { RAW: 0, BROTLI: 1 } as const;
export type ChunkEncoding = (typeof ChunkEncoding)[keyof typeof ChunkEncoding];

/** Chunks shorter than this are stored raw. */
export const MIN_PACKED_BYTES = 1024;

/** A packed chunk is kept only when it is at most this fraction of the raw bytes. */
const KEEP_RATIO = 0.9;


/** A chunk's bytes as stored. */
export interface PackedChunk {
  data: Buffer;
  encoding: ChunkEncoding;
}

/** The bytes to store for `data`: brotli when that saves a tenth or more, else `data` itself. */
export function packChunk(data: Buffer): PackedChunk {
  if (data.length < MIN_PACKED_BYTES) return { data, encoding: ChunkEncoding.RAW };
  const packed = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 1,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  return packed.length <= data.length * KEEP_RATIO ? { data: packed, encoding: ChunkEncoding.BROTLI } : { data, encoding: ChunkEncoding.RAW };
}

/** Where a stored chunk came from, for the message when it cannot be read. */
export interface StoredChunkPlace {
  taskId: string;
  seq: number;
}

/**
 * The raw bytes of a stored chunk, which must be `rawLength` long.
 * @throws DataLossError when the stored bytes do not decode to exactly that
 *   (a damaged row, or an encoding this version does not know).
 */
export function unpackChunk(stored: Buffer, encoding: number, rawLength: number, place: StoredChunkPlace): Buffer {
  let data: Buffer;
  if (encoding === ChunkEncoding.RAW) {
    data = stored;
  } else if (encoding === ChunkEncoding.BROTLI) {
    // No chunk longer than the server accepts was ever packed: a longer
    // length is damage, refused before it sizes a buffer.
    if (!Number.isSafeInteger(rawLength) || rawLength < 0 || rawLength > MAX_CHUNK_BYTES) {
      throw new DataLossError(`stored output of task ${place.taskId} is damaged at chunk ${place.seq}: its offsets give it ${rawLength} bytes, past the ${MAX_CHUNK_BYTES}-byte chunk limit`);
    }
    try {
      // maxOutputLength: a damaged stream cannot make us allocate more than the chunk held.
      data = brotliDecompressSync(stored, { chunkSize: Math.max(rawLength, 64), maxOutputLength: Math.max(rawLength, 1) });
    } catch (err) {
      throw new DataLossError(`stored output of task ${place.taskId} is damaged at chunk ${place.seq}: it does not decompress (${(err as Error).message})`, { cause: err });
    }
  } else {
    throw new DataLossError(`stored output of task ${place.taskId} has chunk ${place.seq} in encoding ${encoding}, which this version of Taskgate cannot read (written by a newer one?)`);
  }
  if (data.length !== rawLength) {
    throw new DataLossError(`stored output of task ${place.taskId} is damaged at chunk ${place.seq}: it holds ${data.length} bytes where its offsets say ${rawLength}`);
  }
  return data;
}
