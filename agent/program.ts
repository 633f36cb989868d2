/**
 * The `taskgate agent` program's composition root. From a config that
 * mirrors its command line it gets the token (a file, or the value given),
 * the TLS credentials and the task isolation settings, then starts the
 * agent. Settings that cannot work are refused with a {@link ConfigError}
 * before it connects; the messages name the flags, as the config mirrors them.
 *
 * It never reads the process environment: the CLI hands it the agent's
 * environment (agent/task-env.ts decides what of it reaches tasks).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../shared/config-error.js';
import type { Logger } from '../shared/logger.js';
import { usesTls, type ClientTls } from '../shared/tls.js';
import { agentCredentials } from './connection.js';
import { TaskgateAgent } from './agent.js';
import { AGENT_DEFAULTS, type AgentOptions } from './options.js';
import { checkPassedNames } from './task-env.js';
import { parseIdRange } from './task-users.js';

/** Defaults of the agent program beyond the agent's own ({@link AGENT_DEFAULTS}). */
export const AGENT_PROGRAM_DEFAULTS = {
  server: '127.0.0.1:7070',
  /** {@link AGENT_DEFAULTS}.taskIds as the command line writes it. */
  taskUids: `${AGENT_DEFAULTS.taskIds.first}-${AGENT_DEFAULTS.taskIds.last}`,
  logLevel: 'info',
  logFormat: 'json',
} as const;

/** What the agent program is started with. */
export interface AgentConfig extends ClientTls {
  /** host:port of the server. */
  server: string;
  name: string;
  /** File holding the token; wins over `token`. */
  tokenFile?: string;
  /** The token itself, from the command line or the environment. */
  token?: string;
  /** Whether `token` came from the environment; one typed on the command line is visible in /proc/PID/cmdline and warned about. */
  tokenFromEnv: boolean;
  workDir?: string;
  /** "FIRST-LAST": the ids tasks run as when the agent is root; "off": tasks run as the agent's user. */
  taskUids: string;
  /** More variable names (or PREFIX*) of `env` passed to tasks. */
  taskEnv: string[];
  /** On stop, how long running tasks may finish before they are killed, in ms. */
  drainMs?: number;
  /** The agent's environment (without Taskgate's own settings): the env secret provider reads it. */
  env: Record<string, string>;
  logger: Logger;
}

/** The running agent program. */
export interface AgentProgram {
  readonly agent: TaskgateAgent;
  /** Resolves when the agent has stopped; rejects (an AgentError) when it cannot go on. */
  readonly finished: Promise<void>;
  /** Takes no new tasks, lets running ones finish for up to `drainMs`, kills the rest, disconnects. */
  stop(): Promise<void>;
}

/** `taskgate agent`: checks the config, starts the agent and returns at once. */
export function runAgent(config: AgentConfig): AgentProgram {
  const { logger } = config;
  let credentials;
  try {
    credentials = agentCredentials(config);
  } catch (err) {
    throw new ConfigError((err as Error).message, { cause: err });
  }
  if (!usesTls(config)) logger.warn({ server: config.server }, 'TLS is off: the agent token and task output cross the network in plaintext; use --tls-ca beyond local development');
  const agent = new TaskgateAgent({
    server: config.server,
    token: agentToken(config),
    name: config.name,
    workDir: config.workDir,
    env: config.env,
    ...isolationOptions(config),
    drainMs: config.drainMs,
    credentials,
    logger,
  });
  return { agent, finished: agent.run(), stop: () => agent.drain() };
}

/**
 * The agent's token from `tokenFile` or `token`, trimmed. A token on the
 * command line is readable by every local user in /proc/PID/cmdline, so
 * that is warned about.
 */
function agentToken(config: AgentConfig): string {
  let token: string;
  if (config.tokenFile) {
    try {
      token = readFileSync(config.tokenFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`--token-file ${config.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  } else if (config.token !== undefined) {
    token = config.token;
    if (!config.tokenFromEnv) {
      config.logger.warn("the agent token was given with --token, where every local user can read it (/proc/PID/cmdline); use --token-file");
    }
  } else {
    throw new ConfigError('the agent needs its token: --token-file FILE (or TASKGATE_AGENT_TOKEN)');
  }
  token = token.trim();
  if (token === '') throw new ConfigError(`the agent token${config.tokenFile ? ` in ${config.tokenFile}` : ''} is empty`);
  if (/\s/.test(token)) throw new ConfigError('the agent token contains white space; it must be the one line `taskgate agents token` printed');
  return token;
}

/** The task isolation options from `taskUids` and `taskEnv`. */
function isolationOptions(config: AgentConfig): Pick<AgentOptions, 'isolate' | 'taskIds' | 'passEnv'> {
  let passEnv: string[];
  try {
    passEnv = checkPassedNames(config.taskEnv);
  } catch (err) {
    throw new ConfigError((err as Error).message, { cause: err });
  }
  if (config.taskUids === 'off') return { isolate: false, passEnv };
  try {
    return { taskIds: parseIdRange(config.taskUids), passEnv };
  } catch (err) {
    throw new ConfigError(`--task-uids: ${(err as Error).message}`, { cause: err });
  }
}
