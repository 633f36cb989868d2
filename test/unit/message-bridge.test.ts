/**
 * The object converter between protobuf-es messages and ts-proto objects
 * (server/rpc/message-bridge.ts), with the wire form as the reference: for
 * every message of every file in proto/, a random ts-proto object (shaped
 * as ts-proto's decoder makes them) must come back equal through
 *   ts-proto encode -> protobuf-es decode -> converter   (requests), and
 *   converter -> protobuf-es encode -> ts-proto decode   (responses),
 * and through Connect's JSON form (what curl sends and reads).
 */
import { fromBinary, fromJsonString, toBinary, toJsonString, ScalarType, type DescField, type DescFile, type DescMessage } from '@bufbuild/protobuf';
import { nestedTypes } from '@bufbuild/protobuf/reflect';
import { expect } from 'chai';
import fc from 'fast-check';
import { file_taskgate_v1_agent } from '../../gen/es/taskgate/v1/agent_pb.js';
import { file_taskgate_v1_event } from '../../gen/es/taskgate/v1/event_pb.js';
import { file_taskgate_v1_target } from '../../gen/es/taskgate/v1/target_pb.js';
import { GetTaskLogsResponseSchema, file_taskgate_v1_task } from '../../gen/es/taskgate/v1/task_pb.js';
import { file_taskgate_v1_user } from '../../gen/es/taskgate/v1/user_pb.js';
import * as agentTs from '../../gen/taskgate/v1/agent.js';
import * as eventTs from '../../gen/taskgate/v1/event.js';
import * as targetTs from '../../gen/taskgate/v1/target.js';
import * as taskTs from '../../gen/taskgate/v1/task.js';
import * as userTs from '../../gen/taskgate/v1/user.js';
import { toProtobufEs, toTsProto } from '../../server/rpc/message-bridge.js';
import { InvalidArgumentError } from '../../shared/errors.js';
import { replayable } from '../helpers/properties.js';

/** What every ts-proto message const has. */
interface TsProtoFns {
  encode(message: unknown): { finish(): Uint8Array };
  decode(input: Uint8Array): unknown;
}

const FILES: ReadonlyArray<[DescFile, Record<string, unknown>]> = [
  [file_taskgate_v1_agent, agentTs],
  [file_taskgate_v1_event, eventTs],
  [file_taskgate_v1_target, targetTs],
  [file_taskgate_v1_task, taskTs],
  [file_taskgate_v1_user, userTs],
];

/** Every message of proto/, with ts-proto's functions for it ("taskgate.v1.A.B" is ts-proto's `A_B`). */
const MESSAGES: Array<{ schema: DescMessage; fns: TsProtoFns }> = FILES.flatMap(([file, module]) =>
  [...nestedTypes(file)]
    .filter((t): t is DescMessage => t.kind === 'message')
    .map((schema) => {
      const fns = module[schema.typeName.slice(file.proto.package.length + 1).replaceAll('.', '_')] as TsProtoFns | undefined;
      if (!fns) throw new Error(`no ts-proto functions for ${schema.typeName}`);
      return { schema, fns };
    }),
);

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
/** Field mask paths as the API uses them: snake_case names (the JSON form needs them convertible to lowerCamel). */
const PATH = fc.stringMatching(/^[a-z]{1,8}(_[a-z]{1,8}){0,2}$/);

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return fc.fullUnicodeString({ maxLength: 12 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a));
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer(INT32);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.maxSafeInteger();
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.maxSafeNat();
    case ScalarType.FLOAT:
      return fc.float({ noNaN: true }).filter((v) => !Object.is(v, -0));
    case ScalarType.DOUBLE:
      return fc.double({ noNaN: true }).filter((v) => !Object.is(v, -0));
  }
}

/** A ts-proto object of `schema`, every key present as ts-proto's decoder makes them. */
function tsProtoObject(schema: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  if (schema.typeName === 'google.protobuf.Duration') {
    // A valid Duration (the JSON form refuses others): seconds within ±10,000 years, nanos of the same sign.
    return fc
      .tuple(fc.integer({ min: -315_576_000_000, max: 315_576_000_000 }), fc.integer({ min: 0, max: 999_999_999 }))
      .map(([seconds, nanos]) => ({ seconds, nanos: seconds < 0 && nanos !== 0 ? -nanos : nanos }));
  }
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of schema.members) {
    if (member.kind === 'oneof') {
      const arms = member.fields.map((f) => singular(f, depth).map((value) => ({ $case: f.localName, value })));
      model[member.localName] = fc.option(fc.oneof(...arms), { nil: undefined });
    } else if (member.fieldKind === 'list') {
      model[member.localName] = fc.array(element(member, depth), { maxLength: 3 });
    } else if (member.fieldKind === 'map') {
      // "__proto__" is left out: a plain-object map cannot hold it, on either side.
      const key = scalar(member.mapKey).map(String).filter((k) => k !== '__proto__');
      model[member.localName] = fc.dictionary(key, element(member, depth), { maxKeys: 3 });
    } else if (member.fieldKind === 'message' || member.presence !== 2 /* IMPLICIT */) {
      model[member.localName] = fc.option(singular(member, depth), { nil: undefined });
    } else {
      model[member.localName] = singular(member, depth);
    }
  }
  return fc.record(model);
}

function message(schema: DescMessage, depth: number): fc.Arbitrary<unknown> {
  if (schema.typeName === 'google.protobuf.Timestamp') {
    return fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true });
  }
  if (schema.typeName === 'google.protobuf.FieldMask') return fc.array(PATH, { maxLength: 3 });
  return depth >= 3 ? fc.constant(undefined) : tsProtoObject(schema, depth + 1);
}

function singular(field: DescField, depth: number): fc.Arbitrary<unknown> {
  if (field.fieldKind === 'message') return message(field.message, depth);
  if (field.fieldKind === 'enum') return enumValue(field.enum.values.map((v) => v.number));
  if (field.fieldKind === 'scalar') return scalar(field.scalar);
  throw new Error(`${field.name} is not singular`);
}

function element(field: DescField, depth: number): fc.Arbitrary<unknown> {
  if (field.fieldKind !== 'list' && field.fieldKind !== 'map') throw new Error(`${field.name} is singular`);
  const kind = field.fieldKind === 'list' ? field.listKind : field.mapKind;
  if (kind === 'message') return message(field.message!, depth).filter((v) => v !== undefined);
  if (kind === 'enum') return enumValue(field.enum!.values.map((v) => v.number));
  return scalar(field.scalar!);
}

/** A declared value, sometimes one this build does not know (open enums keep the number). */
function enumValue(numbers: number[]): fc.Arbitrary<number> {
  return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...numbers) }, { weight: 1, arbitrary: fc.integer(INT32) });
}

describe('message bridge (protobuf-es <-> ts-proto)', () => {
  it('covers every message of proto/', () => {
    expect(MESSAGES.length).to.be.greaterThan(60);
  });

  for (const { schema, fns } of MESSAGES) {
    describe(schema.typeName, () => {
      it('reads what ts-proto wrote: encode, protobuf-es decode, convert', () => {
        fc.assert(
          fc.property(tsProtoObject(schema), (object) => {
            const es = fromBinary(schema, fns.encode(object).finish());
            expect(toTsProto(schema, es)).to.deep.equal(object);
          }),
          replayable(200),
        );
      });

      it('writes what ts-proto reads: convert, protobuf-es encode, ts-proto decode', () => {
        fc.assert(
          fc.property(tsProtoObject(schema), (object) => {
            const bytes = toBinary(schema, toProtobufEs(schema, object));
            expect(fns.decode(bytes)).to.deep.equal(object);
          }),
          replayable(200),
        );
      });

      it("keeps every value through Connect's JSON form", () => {
        fc.assert(
          fc.property(tsProtoObject(schema), (object) => {
            const json = toJsonString(schema, toProtobufEs(schema, object));
            expect(toTsProto(schema, fromJsonString(schema, json))).to.deep.equal(object);
          }),
          replayable(100),
        );
      });
    });
  }

  it('refuses an int64 a number cannot hold, naming the field', () => {
    const es = fromJsonString(GetTaskLogsResponseSchema, JSON.stringify({ chunk: { offset: '9007199254740993', data: '' } }));
    expect(() => toTsProto(GetTaskLogsResponseSchema, es))
      .to.throw(InvalidArgumentError)
      .with.property('message', 'taskgate.v1.LogChunk.offset: 9007199254740993 is out of range (at most ±2^53)');
  });

  it('hands bytes to the services as a Buffer over the same memory', () => {
    const data = new Uint8Array([1, 2, 3, 4]).subarray(1);
    const es = { $typeName: 'taskgate.v1.GetTaskLogsResponse', event: { case: 'chunk', value: { $typeName: 'taskgate.v1.LogChunk', offset: 0n, data } } } as const;
    const ts = toTsProto<taskTs.GetTaskLogsResponse>(GetTaskLogsResponseSchema, es as never);
    const chunk = ts.event?.$case === 'chunk' ? ts.event.value.data : undefined;
    expect(Buffer.isBuffer(chunk)).to.equal(true);
    expect(chunk!.buffer).to.equal(data.buffer);
    expect([...chunk!]).to.deep.equal([2, 3, 4]);
  });
});
