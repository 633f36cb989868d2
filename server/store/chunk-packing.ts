/**
 * Output chunks are stored compressed where it pays (issue 18; measured in
 * bench/compression.ts and docs/benchmarks.md "Compressed output"). Both
 * stores call these functions, so a chunk is packed and unpacked the same
 * way whatever holds it.
 *
 * - Brotli at quality 1: ordinary logs shrink to 0.17–0.23 of their size
 *   for 250–450 MB/s of CPU, faster and smaller than deflate at level 1.
 * - A chunk shorter than {@link MIN_PACKED_BYTES} is kept raw (a few bytes
 *   of `echo` output gain nothing), and so is one that shrinks by less than
 *   a tenth (already compressed or random data).
 * - A packed chunk starts with the CRC-32 of its raw bytes (4 bytes, big
 *   endian): brotli has no checksum of its own, and one flipped bit in a
 *   packed row can decode, at the right length, to tens of KB of other
 *   bytes. A raw row needs none: a flipped bit there changes one byte.
 * - Offsets stay in raw bytes, so range reads, chunk stats and the resume
 *   protocol do not change; a chunk's raw length is its end offset minus its
 *   offset, and unpacking checks it and the CRC.
 * - Both run on the event loop, about 0.25 ms to pack and 0.15 ms to unpack
 *   a 64 KiB chunk: zlib's asynchronous calls (on the thread pool) cost
 *   1.7–2× the CPU here, in stream machinery per call. Unpacking writes into
 *   one buffer of the chunk's raw length (zlib's default 16 KiB pieces are
 *   then joined).
 */
import { brotliCompressSync, brotliDecompressSync, constants, crc32 } from 'node:zlib';
import { DataLossError } from '../../shared/errors.js';
import { MAX_CHUNK_BYTES } from '../../shared/limits.js';
import type { ChunkRecord } from './records.js';

/** How a stored chunk's bytes are encoded (the `encoding` column or field; 0 or absent: raw). */
export const ChunkEncoding = {
  RAW: 0,
  /** The raw bytes' CRC-32 (4 bytes, big endian), then their brotli stream. */
  BROTLI: 1,
} as const;
export type ChunkEncoding = (typeof ChunkEncoding)[keyof typeof ChunkEncoding];

/** Chunks shorter than this are stored raw. */
export const MIN_PACKED_BYTES = 1024;

/** A packed chunk is kept only when it is at most this fraction of the raw bytes. */
const KEEP_RATIO = 0.9;

const CRC_BYTES = 4;

/** A chunk's bytes as stored. */
export interface PackedChunk {
  data: Buffer;
  encoding: ChunkEncoding;
}

/** The bytes to store for `data`: its CRC and brotli stream when that saves a tenth or more, else `data` itself. */
export function packChunk(data: Buffer): PackedChunk {
  if (data.length < MIN_PACKED_BYTES) return { data, encoding: ChunkEncoding.RAW };
  const packed = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 1,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  if (CRC_BYTES + packed.length > data.length * KEEP_RATIO) return { data, encoding: ChunkEncoding.RAW };
  const stored = Buffer.allocUnsafe(CRC_BYTES + packed.length);
  stored.writeUInt32BE(crc32(data), 0);
  packed.copy(stored, CRC_BYTES);
  return { data: stored, encoding: ChunkEncoding.BROTLI };
}

/** Where a stored chunk sits, for the message when it cannot be read. */
export interface StoredChunkPlace {
  taskId: string;
  seq: number;
  /** Its first byte's offset in the task's output. */
  offset: number;
}

/**
 * The raw bytes of a stored chunk, which must be `rawLength` long.
 * @throws DataLossError when the stored bytes do not decode to exactly that
 *   (a damaged row, or an encoding this version does not know); its message
 *   names the task, the chunk and the bytes it held, and the offset to read
 *   from to skip them.
 */
export function unpackChunk(stored: Buffer, encoding: number, rawLength: number, place: StoredChunkPlace): Buffer {
  const damaged = (why: string, cause?: unknown): DataLossError => {
    const end = place.offset + rawLength;
    return new DataLossError(
      `stored output of task ${place.taskId} is damaged at chunk ${place.seq} (bytes ${place.offset}-${end}): ${why}; read from offset ${end} to skip it`,
      cause === undefined ? undefined : { cause },
    );
  };
  if (encoding === ChunkEncoding.RAW) {
    if (stored.length !== rawLength) throw damaged(`it holds ${stored.length} bytes where its offsets say ${rawLength}`);
    return stored;
  }
  if (encoding !== ChunkEncoding.BROTLI) {
    throw damaged(`it is in encoding ${encoding}, which this version of Taskgate cannot read (written by a newer one?)`);
  }
  // No chunk longer than the server accepts was ever packed: a longer
  // length is damage, refused before it sizes a buffer.
  if (!Number.isSafeInteger(rawLength) || rawLength < 0 || rawLength > MAX_CHUNK_BYTES) {
    throw damaged(`its offsets give it ${rawLength} bytes, past the ${MAX_CHUNK_BYTES}-byte chunk limit`);
  }
  if (stored.length < CRC_BYTES) throw damaged(`it holds ${stored.length} bytes, too few for a packed chunk`);
  let data: Buffer;
  try {
    // maxOutputLength: a damaged stream cannot make us allocate more than the chunk held.
    data = brotliDecompressSync(stored.subarray(CRC_BYTES), { chunkSize: Math.max(rawLength, 64), maxOutputLength: Math.max(rawLength, 1) });
  } catch (err) {
    throw damaged('it does not decompress', err);
  }
  if (data.length !== rawLength) throw damaged(`it decompresses to ${data.length} bytes where its offsets say ${rawLength}`);
  if (crc32(data) !== stored.readUInt32BE(0)) throw damaged('its bytes do not match the checksum stored with them');
  return data;
}

/**
 * Unpacks the rows of one read, in seq order. The chunks before a damaged
 * one are returned and the damaged one is left out; it throws only when it
 * comes first, so a reader gets every intact byte before the damage, and
 * its next read (starting at the damage) the DataLossError.
 */
export function unpackBatch<Row>(rows: readonly Row[], unpack: (row: Row) => ChunkRecord): ChunkRecord[] {
  const chunks: ChunkRecord[] = [];
  for (const row of rows) {
    try {
      chunks.push(unpack(row));
    } catch (err) {
      if (chunks.length > 0 && err instanceof DataLossError) break;
      throw err;
    }
  }
  return chunks;
}
