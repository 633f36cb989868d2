/**
 * The agent's options, its defaults table, and the one step that turns given
 * options into compiled ones: every field present, the environment-dependent
 * defaults (work dir, isolation) decided once, names that can never be
 * passed to tasks refused. The CLI's flag defaults are read from
 * {@link AGENT_DEFAULTS}, so each default lives here and nowhere else.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKOFF_DEFAULTS, type BackoffOptions } from '../shared/backoff.js';
import { ConfigError } from '../shared/config-error.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { checkPassedNames } from './task-env.js';
import { DEFAULT_TASK_IDS, type IdRange } from './task-users.js';

/** Options of {@link TaskgateAgent}; defaults in {@link AGENT_DEFAULTS}. */
export interface AgentOptions {
  /** host:port of the server. */
  server: string;
  /** Agent token (from `taskgate agents token`). */
  token: string;
  /** This agent's name; targets name it. */
  name: string;
  /** Where task directories live (docs/isolation.md). Default: $TMPDIR/taskgate-agent-NAME. */
  workDir?: string;
  /**
   * The agent's own environment. The env secret provider reads it; of the
   * rest only PATH, LANG, LANGUAGE, LC_*, TZ and the names in `passEnv`
   * reach tasks (agent/task-env.ts). Default: none (tasks get a default PATH).
   */
  env?: Record<string, string | undefined>;
  /** More variable names (or PREFIX*) passed from `env` to every task. Default none. */
  passEnv?: string[];
  /**
   * Run each task as a uid/gid of its own from `taskIds`. Default: when the
   * agent runs as root. Off, tasks run as the agent's own user.
   */
  isolate?: boolean;
  /** Ids handed to tasks when isolating. Default 61000-61999. */
  taskIds?: IdRange;
  /** Host-wide directory of task id locks (shared by every agent on the host). Default /run/taskgate/task-ids. */
  taskIdLockDir?: string;
  /** Default: plaintext. */
  credentials?: ChannelCredentials;
  /** Reconnect delays. Default: 1 s × 1.6, capped at 120 s, jitter 0.2 (shared/backoff.ts). */
  backoff?: BackoffOptions;
  /** Largest output chunk, in bytes. Default 65536. */
  maxChunkBytes?: number;
  /** Longest an output byte waits before being sent, in ms. Default 20. */
  flushIntervalMs?: number;
  /** Unacknowledged output per task above which the task's pty is paused, in bytes. Default 8 MiB. */
  maxUnackedBytes?: number;
  /** How long {@link TaskgateAgent.drain} lets running tasks finish before it kills them, in ms. Default 60000. */
  drainMs?: number;
  /** Between SIGTERM and SIGKILL for the tasks a drain kills, in ms. Default 5000. */
  drainGraceMs?: number;
  /** Default: a logger that drops everything. */
  logger?: Logger;
}

/** The default of every agent option that has a fixed one (units as in {@link AgentOptions}). */
export const AGENT_DEFAULTS = {
  taskIds: DEFAULT_TASK_IDS,
  taskIdLockDir: '/run/taskgate/task-ids',
  backoff: BACKOFF_DEFAULTS,
  maxChunkBytes: 64 * 1024,
  flushIntervalMs: 20,
  maxUnackedBytes: 8 * 1024 * 1024,
  drainMs: 60_000,
  drainGraceMs: 5000,
} as const satisfies Partial<Record<keyof AgentOptions, unknown>>;

/** The default work dir of the agent named `name`: $TMPDIR/taskgate-agent-NAME. */
export function defaultWorkDir(name: string): string {
  return join(tmpdir(), `taskgate-agent-${name}`);
}

/** {@link AgentOptions} with every default applied. */
export type CompiledAgentOptions = Required<Omit<AgentOptions, 'credentials'>> & Pick<AgentOptions, 'credentials'>;

/** Applies {@link AGENT_DEFAULTS} and the defaults that depend on the host, and refuses what cannot work. */
export function compileAgentOptions(options: AgentOptions): CompiledAgentOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as AgentOptions;
  const o: CompiledAgentOptions = {
    ...AGENT_DEFAULTS,
    workDir: defaultWorkDir(options.name),
    env: {},
    passEnv: [],
    isolate: process.getuid?.() === 0,
    logger: silentLogger(),
    ...given,
    backoff: { ...AGENT_DEFAULTS.backoff, ...given.backoff },
  };
  checkPassedNames(o.passEnv);
  for (const name of ['maxChunkBytes', 'flushIntervalMs', 'maxUnackedBytes'] as const) {
    if (!Number.isFinite(o[name]) || o[name] <= 0) throw new ConfigError(`${name} must be a positive number, not ${o[name]}`);
  }
  for (const name of ['drainMs', 'drainGraceMs'] as const) {
    if (!Number.isFinite(o[name]) || o[name] < 0) throw new ConfigError(`${name} must be 0 or more, not ${o[name]}`);
  }
  return o;
}
