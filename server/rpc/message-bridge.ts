/**
 * The object converter between protobuf-es messages (what Connect hands a
 * handler and wants back) and ts-proto objects (what Taskgate's services
 * take and return), built once per message type from the protobuf-es
 * descriptors (docs/design.md "Generated code: ts-proto, bridged for
 * Connect"). It follows ts-proto's options in buf.gen.yaml:
 *
 * | proto | protobuf-es | ts-proto |
 * |---|---|---|
 * | google.protobuf.Timestamp | `{seconds: bigint, nanos}` | `Date` (useDate=true) |
 * | google.protobuf.FieldMask | `{paths}` | `string[]` |
 * | int64 and its kin | `bigint` | `number` (forceLong=number) |
 * | bytes | `Uint8Array` | `Buffer` (env=node) |
 * | oneof | `{case, value}`, `{case: undefined}` when unset | `{$case, value}`, `undefined` when unset (oneof=unions-value) |
 * | message field unset | `undefined` | `undefined` |
 * | proto3 optional unset | `undefined` | `undefined` (useOptionals=none: the key is there) |
 *
 * Enums are numbers on both sides, maps plain objects, repeated fields
 * arrays. A ts-proto object always has every key (as its decoder makes
 * them), so the converter writes every key too.
 * test/unit/message-bridge.test.ts checks both directions against the wire
 * form, for every message of every file in proto/.
 */
import type { DescField, DescMessage, DescOneof, Message } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { scalarZeroValue } from '@bufbuild/protobuf/reflect';
import { InvalidArgumentError } from '../../shared/errors.js';

/** One value converted, in one direction. */
type Convert = (value: unknown) => unknown;
/** Fills one member of `out` from `from`. */
type Fill = (from: Record<string, unknown>, out: Record<string, unknown>) => void;

const TIMESTAMP = 'google.protobuf.Timestamp';
const FIELD_MASK = 'google.protobuf.FieldMask';

const LONG = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

const toTsCache = new WeakMap<DescMessage, (message: unknown) => Record<string, unknown>>();
const toEsCache = new WeakMap<DescMessage, (object: unknown) => Record<string, unknown>>();

/**
 * The ts-proto object of a protobuf-es message of `schema`. Throws
 * InvalidArgumentError for an int64 beyond ±2^53 (ts-proto's decoder
 * refuses those too).
 */
export function toTsProto<T = unknown>(schema: DescMessage, message: Message): T {
  return toTsOf(schema)(message) as T;
}

/** The protobuf-es message of `schema` for a ts-proto object. */
export function toProtobufEs<M extends Message = Message>(schema: DescMessage, object: unknown): M {
  return toEsOf(schema)(object) as M;
}

function toTsOf(schema: DescMessage): (message: unknown) => Record<string, unknown> {
  let convert = toTsCache.get(schema);
  if (convert) return convert;
  // Set before the members are built, so a message that contains itself finds it.
  const fills: Fill[] = [];
  convert = (message) => {
    const out: Record<string, unknown> = {};
    for (const fill of fills) fill(message as Record<string, unknown>, out);
    return out;
  };
  toTsCache.set(schema, convert);
  for (const member of schema.members) fills.push(member.kind === 'oneof' ? oneofToTs(member) : fieldToTs(member));
  return convert;
}

function toEsOf(schema: DescMessage): (object: unknown) => Record<string, unknown> {
  let convert = toEsCache.get(schema);
  if (convert) return convert;
  const fills: Fill[] = [];
  const typeName = schema.typeName;
  convert = (object) => {
    const out: Record<string, unknown> = { $typeName: typeName };
    for (const fill of fills) fill(object as Record<string, unknown>, out);
    return out;
  };
  toEsCache.set(schema, convert);
  for (const member of schema.members) fills.push(member.kind === 'oneof' ? oneofToEs(member) : fieldToEs(member));
  return convert;
}

function oneofToTs(oneof: DescOneof): Fill {
  const name = oneof.localName;
  const arms = new Map(oneof.fields.map((f) => [f.localName, singularToTs(f)]));
  return (from, out) => {
    const v = from[name] as { case: string | undefined; value?: unknown } | undefined;
    const arm = v?.case === undefined ? undefined : arms.get(v.case);
    out[name] = arm === undefined ? undefined : { $case: v!.case, value: arm(v!.value) };
  };
}

function oneofToEs(oneof: DescOneof): Fill {
  const name = oneof.localName;
  const arms = new Map(oneof.fields.map((f) => [f.localName, singularToEs(f)]));
  return (from, out) => {
    const v = from[name] as { $case: string; value: unknown } | undefined;
    const arm = v === undefined ? undefined : arms.get(v.$case);
    out[name] = arm === undefined ? { case: undefined } : { case: v!.$case, value: arm(v!.value) };
  };
}

function fieldToTs(field: DescField): Fill {
  const name = field.localName;
  if (field.fieldKind === 'list') {
    const element = elementToTs(field, field.listKind === 'message' ? field.message : undefined, field.scalar);
    return (from, out) => {
      const v = from[name] as unknown[];
      out[name] = element === null ? v.slice() : v.map(element);
    };
  }
  if (field.fieldKind === 'map') {
    const element = elementToTs(field, field.mapKind === 'message' ? field.message : undefined, field.scalar);
    return (from, out) => {
      out[name] = mapObject(from[name] as Record<string, unknown>, element);
    };
  }
  const convert = singularToTs(field);
  // Message fields and proto3 optionals are undefined when unset, on both sides.
  return (from, out) => {
    const v = from[name];
    out[name] = v === undefined ? undefined : convert(v);
  };
}

function fieldToEs(field: DescField): Fill {
  const name = field.localName;
  if (field.fieldKind === 'list') {
    const element = elementToEs(field.listKind === 'message' ? field.message : undefined, field.scalar);
    return (from, out) => {
      const v = from[name] as unknown[] | undefined;
      out[name] = v === undefined ? [] : element === null ? v.slice() : v.map(element);
    };
  }
  if (field.fieldKind === 'map') {
    const element = elementToEs(field.mapKind === 'message' ? field.message : undefined, field.scalar);
    return (from, out) => {
      out[name] = mapObject((from[name] as Record<string, unknown> | undefined) ?? {}, element);
    };
  }
  const convert = singularToEs(field);
  if (field.fieldKind === 'message' || field.presence !== IMPLICIT) {
    return (from, out) => {
      const v = from[name];
      if (v !== undefined) out[name] = convert(v);
    };
  }
  // An implicit-presence field a hand-made object left out is its zero value, as ts-proto's encoder takes it.
  const zero = field.fieldKind === 'enum' ? 0 : scalarZeroValue(field.scalar, field.longAsString);
  return (from, out) => {
    const v = from[name];
    out[name] = v === undefined ? zero : convert(v);
  };
}

/** FeatureSet_FieldPresence.IMPLICIT: proto3 fields without `optional`. */
const IMPLICIT = 2;

function singularToTs(field: DescField): Convert {
  if (field.fieldKind === 'message') return messageToTs(field.message);
  if (field.fieldKind === 'scalar') return scalarToTs(field, field.scalar) ?? identity;
  return identity;
}

function singularToEs(field: DescField): Convert {
  if (field.fieldKind === 'message') return messageToEs(field.message);
  if (field.fieldKind === 'scalar') return scalarToEs(field.scalar) ?? identity;
  return identity;
}

function elementToTs(field: DescField, message: DescMessage | undefined, scalar: ScalarType | undefined): Convert | null {
  if (message) return messageToTs(message);
  return scalar === undefined ? null : scalarToTs(field, scalar);
}

function elementToEs(message: DescMessage | undefined, scalar: ScalarType | undefined): Convert | null {
  if (message) return messageToEs(message);
  return scalar === undefined ? null : scalarToEs(scalar);
}

function messageToTs(schema: DescMessage): Convert {
  if (schema.typeName === TIMESTAMP) {
    // As ts-proto's fromTimestamp: milliseconds, the sub-millisecond part dropped by Date.
    return (v) => {
      const t = v as { seconds: bigint; nanos: number };
      return new Date(Number(t.seconds) * 1000 + t.nanos / 1_000_000);
    };
  }
  if (schema.typeName === FIELD_MASK) return (v) => (v as { paths: string[] }).paths.slice();
  return toTsOf(schema);
}

function messageToEs(schema: DescMessage): Convert {
  if (schema.typeName === TIMESTAMP) {
    // Normalized (0 <= nanos < 1e9), which the JSON form requires; ts-proto's
    // decoder reads back the same instant.
    return (v) => {
      const ms = (v as Date).getTime();
      if (!Number.isFinite(ms)) throw new Error('cannot send an invalid Date as a Timestamp');
      const seconds = Math.floor(ms / 1000);
      return { $typeName: TIMESTAMP, seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
    };
  }
  if (schema.typeName === FIELD_MASK) return (v) => ({ $typeName: FIELD_MASK, paths: (v as string[]).slice() });
  return toEsOf(schema);
}

function scalarToTs(field: DescField, scalar: ScalarType): Convert | null {
  if (LONG.has(scalar)) {
    return (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${field.parent.typeName}.${field.name}: ${String(v)} is out of range (at most ±2^53)`);
      return n;
    };
  }
  if (scalar === ScalarType.BYTES) {
    return (v) => {
      const bytes = v as Uint8Array;
      return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    };
  }
  return null;
}

function scalarToEs(scalar: ScalarType): Convert | null {
  // Whole numbers only: BigInt refuses a fraction (ts-proto's encoder drops it too).
  if (LONG.has(scalar)) return (v) => BigInt(Math.trunc(v as number));
  return null;
}

function mapObject(from: Record<string, unknown>, element: Convert | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(from)) out[key] = element === null ? from[key] : element(from[key]);
  return out;
}

function identity(v: unknown): unknown {
  return v;
}
