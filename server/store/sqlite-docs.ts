/**
 * How the embedded store's tables hold a record: a JSON document in a `doc`
 * column, written and read through its kind's codec
 * (server/store/record-codecs.ts).
 */
import type { RecordCodec, StoredDoc } from './record-codecs.js';

/** A row read for its document. */
export interface DocRow {
  doc: string;
}

/** A record as its `doc` column holds it (its codec's stored form, as JSON). */
export function encode<R>(codec: RecordCodec<R>, record: R): string {
  return JSON.stringify(codec.encode(record));
}

/** The record a `doc` column holds, in the current shape. */
export function decode<R>(codec: RecordCodec<R>, json: string): R {
  return codec.decode(JSON.parse(json) as StoredDoc);
}
