#!/usr/bin/env node
/**
 * The `taskgate-agent` command of the agent package (`npm run pack:agent`,
 * docs/install-agent.md): `taskgate agent` on its own, with the same flags
 * and environment variables (agent/command.ts), for hosts that run an agent
 * and nothing else. A refused setting is one line and exit code 2.
 */
import { CommanderError } from 'commander';
import { ConfigError } from '../shared/config-error.js';
import { VERSION } from '../shared/version.js';
import { dropIpServerNameWarning } from '../shared/warnings.js';
import { agentCommand } from './command.js';

dropIpServerNameWarning();

const program = agentCommand('taskgate-agent').version(VERSION).exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`taskgate-agent: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  }
}
