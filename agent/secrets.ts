/**
 * Secret providers, resolved on the agent when a task starts (docs/secrets.md):
 *
 * - "env": `path` names a variable of the agent's environment holding a JSON
 *   object (as Runops agents did);
 * - "file": `path` is a JSON file on the agent host;
 * - "stored": values kept encrypted by the control plane, sent only with the
 *   task to the agent that runs it — the one provider whose values do pass
 *   through the server.
 *
 * The env provider reads the agent's own environment, but that variable
 * never reaches a task: a task's environment is built (agent/task-env.ts).
 *
 * The object's string values become environment variables of the task,
 * renamed by `mapping` (task variable -> key in the object; empty: every key
 * under its own name). Errors name what is missing and never include a value.
 */
import { readFile } from 'node:fs/promises';

/** Where a task's secrets come from. */
export interface SecretSource {
  provider: string;
  path: string;
  mapping: Record<string, string>;
  /** With provider "stored": the values the server sent with the task. */
  stored?: Record<string, string>;
}

/** Thrown when secrets cannot be resolved; the message is safe to show. */
export class SecretError extends Error {}

function parse(json: string, where: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new SecretError(`${where} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SecretError(`${where} is not a JSON object`);
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'string') out[key] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[key] = String(v);
  }
  return out;
}

/** The task environment variables a source yields; `env` is the agent's own environment. */
export async function resolveSecrets(source: SecretSource, env: Record<string, string | undefined>): Promise<Record<string, string>> {
  if (source.provider === '') return {};
  let values: Record<string, string>;
  switch (source.provider) {
    case 'env': {
      const json = env[source.path];
      if (json === undefined) throw new SecretError(`secret provider env: variable ${source.path} is not set on this agent`);
      values = parse(json, `secret provider env: variable ${source.path}`);
      break;
    }
    case 'file': {
      let json: string;
      try {
        json = await readFile(source.path, 'utf8');
      } catch (err) {
        throw new SecretError(`secret provider file: cannot read ${source.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      values = parse(json, `secret provider file: ${source.path}`);
      break;
    }
    case 'stored':
      values = source.stored ?? {};
      break;
    default:
      throw new SecretError(`secret provider "${source.provider}" is not supported by this agent`);
  }
  const mapping = Object.entries(source.mapping);
  if (mapping.length === 0) return values;
  const out: Record<string, string> = {};
  const missing: string[] = [];
  for (const [name, key] of mapping) {
    const v = values[key];
    if (v === undefined) missing.push(key);
    else out[name] = v;
  }
  if (missing.length) throw new SecretError(`secret keys missing from ${source.provider} ${source.path}: ${missing.join(', ')}`);
  return out;
}
