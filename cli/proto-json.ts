/**
 * The CLI's `--json`: proto3 JSON, the canonical mapping grpcurl, the Go and
 * Python SDKs and Connect print (https://protobuf.dev/programming-guides/json/).
 * ts-proto's `toJSON` is not that mapping: with `forceLong=number` it writes
 * int64 fields (`outputBytes`, `findings`, log offsets) as JSON numbers,
 * where proto3 JSON writes strings, so a script reading `jq .outputBytes`
 * saw a number from the CLI and a string from grpcurl. Here a message goes
 * through its wire form: ts-proto encodes it, @bufbuild/protobuf decodes it
 * against the descriptors `buf build` wrote (gen/descriptors.binpb, the ones
 * the server's reflection serves) and writes proto3 JSON. Fields at their
 * default are left out, as grpcurl does.
 */
import { createFileRegistry, fromBinary, toJson, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** What the CLI needs of a ts-proto message type. */
export interface Encodes<T> {
  encode(message: T): { finish(): Uint8Array };
}

const DESCRIPTORS = join(import.meta.dirname, '..', '..', 'gen', 'descriptors.binpb');

let registry: FileRegistry | undefined;

/** Every message of proto/ and its imports, read once. */
function messages(): FileRegistry {
  registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS)));
  return registry;
}

/**
 * `message`, of the ts-proto type `type` whose full proto name is
 * `typeName` ("taskgate.v1.Task"), as a proto3 JSON value.
 */
export function protoJson<T>(typeName: string, type: Encodes<T>, message: T): JsonValue {
  const schema = messages().getMessage(typeName);
  if (!schema) throw new Error(`no message ${typeName} in ${DESCRIPTORS}: run npm run gen`);
  return toJson(schema, fromBinary(schema, type.encode(message).finish()));
}
