/**
 * Documented limits (docs/limits.md). Requests beyond them are refused with
 * INVALID_ARGUMENT or RESOURCE_EXHAUSTED and a message naming the limit.
 */

/** Largest script accepted by CreateTask, in bytes of UTF-8. */
export const MAX_SCRIPT_BYTES = 1024 * 1024;

/** Largest task message, in bytes of UTF-8. */
export const MAX_MESSAGE_BYTES = 16 * 1024;

/** Largest output chunk an agent may send, in bytes. */
export const MAX_CHUNK_BYTES = 256 * 1024;

/** Largest gRPC message either side accepts, in bytes (script + envelope). */
export const MAX_GRPC_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Largest page a list call returns. */
export const MAX_PAGE_SIZE = 500;

/** Task types: script interpreters, then database clients (docs/target-types.md). */
export const SCRIPT_TYPES = ['bash', 'sh', 'python', 'node', 'postgres', 'mysql'] as const;

/** One of {@link SCRIPT_TYPES}. */
export type ScriptType = (typeof SCRIPT_TYPES)[number];

/** Whether `value` names a supported interpreter. */
export function isScriptType(value: string): value is ScriptType {
  return (SCRIPT_TYPES as readonly string[]).includes(value);
}
