/** `taskgate agents ...`: list, token. */
import { Command } from 'commander';
import { CreateAgentTokenResponse, ListAgentsResponse } from '../../gen/taskgate/v1/agent.js';
import type { Api, ClientOptions } from '../client.js';
import { printJson, table, time, ttlOption } from '../format.js';

/** The `agents` command group. */
export function agentsCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const agents = new Command('agents').description('see agents and issue their tokens');

  withClient(agents.command('list'))
    .description('list agents')
    .action(async (_opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.agents, client.agents.listAgents, {});
      if ((cmd.optsWithGlobals() as ClientOptions).json) {
        printJson('taskgate.v1.ListAgentsResponse', ListAgentsResponse, res);
        return;
      }
      const rows = res.agents.map((a) => [
        a.name,
        a.connected ? 'connected' : 'offline',
        a.version || '-',
        String(a.runningTasks),
        time(a.lastSeen),
      ]);
      process.stdout.write(`${table(['NAME', 'STATE', 'VERSION', 'RUNNING', 'LAST SEEN'], rows)}\n`);
    });

  withClient(agents.command('token'))
    .description('issue a token for an agent (shown once)')
    .requiredOption('--name <name>', 'the agent the token is for')
    .option('--expires <duration>', 'valid for this long (e.g. 12h, 90d); default: until revoked')
    .action(async (opts: { name: string; expires?: string }, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.agents, client.agents.createAgentToken, { name: opts.name, ttl: ttlOption(opts.expires) });
      if ((cmd.optsWithGlobals() as ClientOptions).json) {
        printJson('taskgate.v1.CreateAgentTokenResponse', CreateAgentTokenResponse, res);
        return;
      }
      process.stdout.write(`${res.token}\n`);
      // The agent reaches the server as this command did: the same TLS settings.
      const options = cmd.optsWithGlobals() as ClientOptions;
      const tls = options.tlsCa ? ` --tls-ca ${options.tlsCa}` : options.tls ? ' --tls' : '';
      process.stderr.write(
        `token for agent "${res.name}"; it is shown only now. Start the agent with:\n` +
          `  taskgate agent --server ${client.server}${tls} --name ${res.name} --token-file FILE   (FILE holds the token, mode 0600)\n` +
          `  (if the server takes agents over mutual TLS, use its --agent-listen address and add --tls-cert and --tls-key)\n`,
      );
    });

  return agents;
}
