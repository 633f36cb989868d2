/**
 * Converting between protobuf-es v2 messages (what Connect hands a handler)
 * and ts-proto objects (what Taskgate's server code uses), two ways:
 *  - through the wire form: protobuf-es toBinary -> ts-proto decode, and
 *    ts-proto encode -> protobuf-es fromBinary;
 *  - directly, object to object, by a converter compiled from the
 *    protobuf-es descriptor (Timestamp <-> Date, int64 bigint <-> number,
 *    oneof {case,value} <-> {$case,value}, bytes Uint8Array -> Buffer).
 */
import { fromBinary, toBinary, ScalarType, type DescField, type DescMessage, type MessageShape } from '@bufbuild/protobuf';

/** What every ts-proto message const has (`MessageFns<T>`). */
export interface TsProtoFns<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** Request direction through the wire: protobuf-es message -> ts-proto object. */
export function wireToTs<D extends DescMessage, T>(schema: D, fns: TsProtoFns<T>, msg: MessageShape<D>): T {
  return fns.decode(toBinary(schema, msg));
}

/** Response direction through the wire: ts-proto object -> protobuf-es message. */
export function wireToEs<D extends DescMessage, T>(schema: D, fns: TsProtoFns<T>, obj: T): MessageShape<D> {
  return fromBinary(schema, fns.encode(obj).finish());
}

type Conv = (v: any) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
const TIMESTAMP = 'google.protobuf.Timestamp';
const FIELD_MASK = 'google.protobuf.FieldMask'; // ts-proto unwraps it to string[] (paths)
const is64 = (t: ScalarType): boolean =>
  t === ScalarType.INT64 || t === ScalarType.UINT64 || t === ScalarType.FIXED64 || t === ScalarType.SFIXED64 || t === ScalarType.SINT64;

const toTsCache = new Map<string, Conv>();
const toEsCache = new Map<string, Conv>();

function scalarToTs(t: ScalarType): Conv | null {
  if (is64(t)) return (v: bigint) => Number(v); // ts-proto forceLong=number
  if (t === ScalarType.BYTES) return (v: Uint8Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength); // env=node: Buffer
  return null;
}
function scalarToEs(t: ScalarType): Conv | null {
  return is64(t) ? (v: number) => BigInt(v) : null;
}

/** Converter for one field's value in the given direction. */
function fieldConv(f: DescField, toTs: boolean): Conv | null {
  const msg = (d: DescMessage): Conv => {
    if (d.typeName === TIMESTAMP) {
      return toTs
        ? (v) => (v === undefined ? undefined : new Date(Number(v.seconds) * 1000 + Math.floor(v.nanos / 1e6)))
        : (v: Date | undefined) => {
            if (v === undefined) return undefined;
            const ms = v.getTime();
            return { $typeName: TIMESTAMP, seconds: BigInt(Math.floor(ms / 1000)), nanos: (((ms % 1000) + 1000) % 1000) * 1e6 };
          };
    }
    if (d.typeName === FIELD_MASK) {
      return toTs
        ? (v) => (v === undefined ? undefined : v.paths.slice())
        : (v: string[] | undefined) => (v === undefined ? undefined : { $typeName: FIELD_MASK, paths: v.slice() });
    }
    const c = toTs ? compileToTs(d) : compileToEs(d);
    return (v) => (v === undefined ? undefined : c(v));
  };
  const scalar = toTs ? scalarToTs : scalarToEs;
  switch (f.fieldKind) {
    case 'scalar': return scalar(f.scalar);
    case 'enum': return null;
    case 'message': return msg(f.message);
    case 'list': {
      const e = f.listKind === 'message' ? msg(f.message) : f.listKind === 'scalar' ? scalar(f.scalar) : null;
      return e ? (a: unknown[]) => a.map(e) : (a: unknown[]) => a.slice();
    }
    case 'map': {
      const e = f.mapKind === 'message' ? msg(f.message) : f.mapKind === 'scalar' ? scalar(f.scalar) : null;
      return (o: Record<string, unknown>) => {
        const r: Record<string, unknown> = {};
        for (const k in o) r[k] = e ? e(o[k]) : o[k];
        return r;
      };
    }
  }
}

/**
 * Compiles a converter for `desc` as one object literal (new Function), so
 * property access stays monomorphic; nested converters are passed in as `c[i]`.
 */
function compile(desc: DescMessage, toTs: boolean): Conv {
  const cache = toTs ? toTsCache : toEsCache;
  const hit = cache.get(desc.typeName);
  if (hit) return hit;
  let impl: Conv = () => { throw new Error('unreachable'); };
  const conv: Conv = (v) => impl(v); // placeholder for recursive types
  cache.set(desc.typeName, conv);
  const c: (Conv | null)[] = [];
  const ref = (f: DescField, src: string): string => {
    const k = fieldConv(f, toTs);
    if (!k) return src;
    c.push(k);
    return `c[${c.length - 1}](${src})`;
  };
  const props: string[] = toTs ? [] : [`$typeName: ${JSON.stringify(desc.typeName)}`];
  for (const mem of desc.members) {
    const n = JSON.stringify(mem.localName);
    const src = `m[${n}]`;
    if (mem.kind === 'oneof') {
      const arms = mem.fields.map((f) =>
        toTs
          ? `v.case === ${JSON.stringify(f.localName)} ? { $case: v.case, value: ${ref(f, 'v.value')} } : `
          : `v.$case === ${JSON.stringify(f.localName)} ? { case: v.$case, value: ${ref(f, 'v.value')} } : `,
      );
      const none = toTs ? 'undefined' : '{ case: undefined }';
      const unset = toTs ? 'v.case === undefined' : 'v === undefined';
      props.push(`${n}: ((v) => ${unset} ? ${none} : ${arms.join('')}${none})(${src})`);
    } else if (mem.fieldKind === 'message') {
      props.push(`${n}: ${src} === undefined ? undefined : ${ref(mem, src)}`);
    } else if (mem.fieldKind === 'scalar' && mem.proto.proto3Optional) {
      props.push(`${n}: ${src} === undefined ? undefined : ${ref(mem, src)}`);
    } else {
      props.push(`${n}: ${ref(mem, src)}`);
    }
  }
  impl = new Function('c', `return function (m) { return { ${props.join(', ')} }; };`)(c) as Conv;
  cache.set(desc.typeName, impl);
  return impl;
}

/** protobuf-es message of `desc` -> ts-proto object. */
export const compileToTs = (desc: DescMessage): Conv => compile(desc, true);
/** ts-proto object -> protobuf-es message of `desc` (a plain object with $typeName, as create() makes for proto3). */
export const compileToEs = (desc: DescMessage): Conv => compile(desc, false);

/** Request direction, object to object. */
export function objToTs<D extends DescMessage, T>(schema: D, msg: MessageShape<D>): T {
  return compileToTs(schema)(msg) as T;
}
/** Response direction, object to object. */
export function objToEs<D extends DescMessage, T>(schema: D, obj: T): MessageShape<D> {
  return compileToEs(schema)(obj) as MessageShape<D>;
}
