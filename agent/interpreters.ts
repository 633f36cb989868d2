/**
 * How each task type is run. The script always reaches the interpreter as a
 * file (path argument or redirected stdin), never spliced into a command
 * line, and database passwords travel through the environment or a 0600
 * option file in the task's private directory, never through argv
 * (docs/target-types.md).
 */
import { accessSync, constants } from 'node:fs';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import type { ScriptType } from '../shared/limits.js';

/** The program, arguments and extra environment that run a script file. */
export interface Command {
  file: string;
  args: string[];
  /** Added to the task's environment. */
  env: Record<string, string>;
}

/** What a task type needs to build its command. */
export interface CommandInput {
  scriptPath: string;
  /** Writes a file only the task can read into its private directory (removed afterwards); returns its path. */
  writePrivate(name: string, content: string): Promise<string>;
  /** Whether the task's user may run the program at this path (default: the agent may). */
  canRun?(path: string): boolean;
  /** The task's resolved secrets, by variable name. */
  secrets: Record<string, string>;
  /** The PATH the program is looked up on. */
  path: string;
}

/** The task cannot be started as configured; the message is safe to show (it never holds a value). */
export class CommandError extends Error {}

/** Secrets a database type needs, and those that are addresses rather than credentials. */
interface Connection {
  required: readonly string[];
  /** Host, port, user and database: shown in the output, unlike every other secret value. */
  plain: readonly string[];
}

/** The connection secrets of each database type. */
const CONNECTION_SECRETS: Readonly<Partial<Record<ScriptType, Connection>>> = {
  postgres: { required: ['PG_HOST', 'PG_USER', 'PG_PASS', 'PG_DB'], plain: ['PG_HOST', 'PG_PORT', 'PG_USER', 'PG_DB'] },
  mysql: { required: ['MYSQL_HOST', 'MYSQL_USER', 'MYSQL_PASS', 'MYSQL_DB'], plain: ['MYSQL_HOST', 'MYSQL_PORT', 'MYSQL_USER', 'MYSQL_DB'] },
};

/**
 * The secret values to mask in a task's output: all of them except a
 * database type's connection address (a DBA reading "Table '***.orders'"
 * learns nothing safer than "Table 'shop.orders'"). Passwords always are.
 */
export function maskedSecrets(type: string, secrets: Record<string, string>): string[] {
  const plain = new Set(CONNECTION_SECRETS[type as ScriptType]?.plain ?? []);
  return Object.entries(secrets)
    .filter(([name]) => !plain.has(name))
    .map(([, value]) => value);
}

/** Seconds a database client waits for a connection before failing the task. */
const CONNECT_TIMEOUT_SECONDS = '30';

function requireSecrets(type: ScriptType, secrets: Record<string, string>): void {
  const connection = CONNECTION_SECRETS[type];
  if (!connection) return;
  const missing = connection.required.filter((name) => !secrets[name]);
  if (missing.length) {
    throw new CommandError(
      `a ${type} task needs the secrets ${connection.required.join(', ')}; missing: ${missing.join(', ')} (set the target's --secret-provider and --secret-mapping)`,
    );
  }
}

/** One value of a MySQL option file: quoted, with the escapes the client understands. */
function optionValue(name: string, value: string): string {
  if (/[\n\r\0]/.test(value)) throw new CommandError(`secret ${name} contains a line break or NUL, which a MySQL option file cannot hold`);
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The program each type runs; `node` is the agent's own runtime, always present. */
const PROGRAMS: Readonly<Record<ScriptType, () => string>> = {
  bash: () => 'bash',
  sh: () => 'sh',
  python: () => 'python3',
  node: () => process.execPath,
  postgres: () => 'psql',
  mysql: () => 'mysql',
};

/** The command that runs `input.scriptPath` for `type`, with its program resolved on `input.path`. */
export async function commandFor(type: ScriptType, input: CommandInput): Promise<Command> {
  requireSecrets(type, input.secrets);
  const program = PROGRAMS[type]();
  const file = resolveProgram(program, input.path, input.canRun);
  if (!file) throw new CommandError(`interpreter "${program}" not found on the task's PATH (or not executable by the task's user)`);
  const { scriptPath, secrets } = input;
  // Present and non-empty for the required names (checked above).
  const secret = (name: string): string => secrets[name] ?? '';
  switch (type) {
    case 'bash':
    case 'sh':
    case 'python':
    case 'node':
      return { file, args: [scriptPath], env: {} };
    case 'postgres': {
      // libpq reads the connection from PG* variables; -w never prompts for a password.
      const env: Record<string, string> = {
        PGHOST: secret('PG_HOST'),
        PGUSER: secret('PG_USER'),
        PGPASSWORD: secret('PG_PASS'),
        PGDATABASE: secret('PG_DB'),
        PGAPPNAME: `taskgate ${basename(scriptPath)}`,
        PGCONNECT_TIMEOUT: CONNECT_TIMEOUT_SECONDS,
      };
      if (secrets.PG_PORT) env.PGPORT = secret('PG_PORT');
      return {
        file,
        args: ['--no-psqlrc', '--no-password', '--set', 'ON_ERROR_STOP=1', '--pset', 'pager=off', '--file', scriptPath],
        env,
      };
    }
    case 'mysql': {
      // The password goes in an option file only the agent's user can read,
      // inside the task's private directory (removed when the task ends).
      const lines = [
        '[client]',
        `host=${optionValue('MYSQL_HOST', secret('MYSQL_HOST'))}`,
        `user=${optionValue('MYSQL_USER', secret('MYSQL_USER'))}`,
        `password=${optionValue('MYSQL_PASS', secret('MYSQL_PASS'))}`,
        `database=${optionValue('MYSQL_DB', secret('MYSQL_DB'))}`,
        `connect-timeout=${CONNECT_TIMEOUT_SECONDS}`,
      ];
      if (secrets.MYSQL_PORT) lines.push(`port=${optionValue('MYSQL_PORT', secrets.MYSQL_PORT)}`);
      const optionFile = await input.writePrivate('.taskgate-my.cnf', `${lines.join('\n')}\n`);
      // Script on stdin puts the client in batch mode: it stops at the first
      // error with its line number and exits 1. "$1".."$3" are arguments,
      // not text spliced into the shell command.
      const shell = resolveProgram('sh', input.path, input.canRun) ?? '/bin/sh';
      return {
        file: shell,
        args: ['-c', 'exec "$1" --defaults-extra-file="$2" --table < "$3"', 'taskgate-mysql', file, optionFile, scriptPath],
        env: {},
      };
    }
  }
}

/** The absolute path of `program` on `path` (a PATH value) that `canRun` accepts, or null. */
export function resolveProgram(program: string, path: string, canRun?: (path: string) => boolean): string | null {
  const candidates = isAbsolute(program) ? [program] : path.split(delimiter).filter(Boolean).map((dir) => join(dir, program));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (canRun && !canRun(candidate)) continue;
      return candidate;
    } catch {
      // not here; try the next directory
    }
  }
  return null;
}
