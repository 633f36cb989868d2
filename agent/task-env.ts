/**
 * A task's environment is built, never inherited: a short allowlist of the
 * agent's own variables (PATH, locale, time zone, plus the names given with
 * `--task-env`), the terminal and home the task runs in, its own target's
 * resolved secrets and Taskgate's task metadata (TASKGATE_*). Nothing else
 * of the agent's environment — other targets' env-provider secrets, the
 * agent's token, its proxy settings — reaches a task (docs/isolation.md).
 */
import { secretNameProblem } from '../shared/env-names.js';

/** Variables passed from the agent's environment by default; a trailing "*" matches a prefix. */
export const DEFAULT_PASSED_ENV: readonly string[] = ['PATH', 'LANG', 'LANGUAGE', 'LC_*', 'TZ'];

/** The PATH a task gets when the agent has none. */
const FALLBACK_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Checks the extra names an operator passes with --task-env; throws a message naming the bad one. */
export function checkPassedNames(names: readonly string[]): string[] {
  for (const name of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*\*?$/.test(name)) throw new Error(`--task-env "${name}" is not a variable name (or NAME* for a prefix)`);
    if (name.toUpperCase().startsWith('TASKGATE_')) throw new Error(`--task-env "${name}": Taskgate's own variables are never passed to tasks`);
  }
  return [...names];
}

/** The metadata every task sees as TASKGATE_* variables. */
export interface TaskMetadata {
  taskId: string;
  target: string;
  /** The creator's email. */
  user: string;
  groups: readonly string[];
  message: string;
}

/** What a task environment is made of. */
export interface TaskEnvInput {
  /** The agent's own environment; only allowlisted names are read. */
  agentEnv: Readonly<Record<string, string | undefined>>;
  /** Names passed on (exact, or "PREFIX*"). */
  passed: readonly string[];
  /** The task's private directory: HOME and the working directory. */
  home: string;
  /** The task's private temporary directory (TMPDIR). */
  tmp: string;
  /** The run-as user's name (USER, LOGNAME), or "". */
  user: string;
  /** The task's resolved secrets, by variable name. */
  secrets: Readonly<Record<string, string>>;
  /** What the task type's command adds (PGPASSWORD and the like). */
  commandEnv: Readonly<Record<string, string>>;
  metadata: TaskMetadata;
}

/** A secret whose name would hijack the interpreter; the task must not start. */
export class TaskEnvError extends Error {}

/** Whether `name` is passed by one of `patterns`. */
function passes(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/** The whole environment of a task's process. */
export function buildTaskEnv(input: TaskEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  const patterns = [...DEFAULT_PASSED_ENV, ...input.passed];
  for (const [name, value] of Object.entries(input.agentEnv)) {
    if (value !== undefined && !name.startsWith('TASKGATE_') && passes(name, patterns)) env[name] = value;
  }
  env.PATH ??= FALLBACK_PATH;
  env.TERM = 'xterm-256color';
  env.HOME = input.home;
  env.TMPDIR = input.tmp;
  if (input.user !== '') {
    env.USER = input.user;
    env.LOGNAME = input.user;
  }
  for (const [name, value] of Object.entries(input.secrets)) {
    const problem = secretNameProblem(name);
    if (problem) throw new TaskEnvError(`secret ${problem}`);
    env[name] = value;
  }
  Object.assign(env, input.commandEnv);
  const { metadata } = input;
  env.TASKGATE_TASK_ID = metadata.taskId;
  env.TASKGATE_TARGET = metadata.target;
  env.TASKGATE_USER = metadata.user;
  env.TASKGATE_USER_GROUPS = metadata.groups.join(',');
  env.TASKGATE_MESSAGE = metadata.message;
  return env;
}
