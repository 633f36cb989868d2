/**
 * The `taskgate dev` program's composition root: a server on the embedded
 * store (server/program.ts), an admin token in DATA_DIR/admin.token, a local
 * agent "local" and a bash target "local" for it, so that one command gives
 * a working control plane.
 *
 * The agent's token and the target are made through the public API with the
 * admin's token, as anyone would make them: validated, and in the audit
 * trail as the admin's doing.
 */
import { status } from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writePrivateFile } from '../shared/private-files.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ReviewMode, Target } from '../gen/taskgate/v1/target.js';
import { TaskgateAgent } from '../agent/agent.js';
import { SERVER_DEFAULTS } from '../server/options.js';
import { keepAdminToken, keepToken, startServer, type ServerConfig } from '../server/program.js';
import { Api, DEV_TOKEN_FILE, isServiceError } from './client.js';

/** The agent and target `taskgate dev` runs. */
const LOCAL = 'local';

/** Defaults of `taskgate dev` where they differ from `taskgate server`'s. */
export const DEV_DEFAULTS = {
  /** Loopback only: a dev control plane is for this machine. */
  listen: SERVER_DEFAULTS.listen,
  /** The browser API (and later the console), loopback only too. */
  httpListen: '127.0.0.1:7080',
  logLevel: 'warn',
  logFormat: 'pretty',
} as const;

/** What `taskgate dev` is started with: the server's config and the local agent's environment. */
export interface DevConfig extends ServerConfig {
  /** The local agent's environment (without Taskgate's own settings). */
  agentEnv: Record<string, string>;
}

/** The running dev program. */
export interface DevProgram {
  /** host:port the server and its local agent use. */
  readonly address: string;
  /** The admin's token, as saved in DATA_DIR/admin.token. */
  readonly adminToken: string;
  /** Where browsers and curl reach the API ("http://127.0.0.1:7080"); null when --http-listen is off. */
  readonly httpUrl: string | null;
  /** A one-time link that signs a browser in to the console as the admin; null when --http-listen is off. */
  readonly signInLink: string | null;
  /** Stops the agent, then the server. */
  stop(): Promise<void>;
}

/** `taskgate dev`: starts everything and returns once the local agent is connected. */
export async function runDev(config: DevConfig): Promise<DevProgram> {
  const { agentEnv, ...serverConfig } = config;
  // Stored secrets work out of the box in dev: a key kept in the data directory.
  if (!serverConfig.secretsKeyFile) {
    const keyFile = join(serverConfig.dataDir, 'secrets.key');
    if (!existsSync(keyFile)) {
      writePrivateFile(keyFile, `${randomBytes(32).toString('hex')}\n`);
    }
    serverConfig.secretsKeyFile = keyFile;
  }
  const running = await startServer(serverConfig);
  let agent: TaskgateAgent | undefined;
  try {
    const { server } = running;
    const admin = await keepAdminToken(server, join(serverConfig.dataDir, 'admin.token'), serverConfig.adminEmail);
    const address = `127.0.0.1:${server.port}`;
    const api = new Api({ server: address, token: admin.token });
    let agentToken: string;
    try {
      ({ token: agentToken } = await keepToken(
        join(serverConfig.dataDir, `agent-${LOCAL}.token`),
        (token) => server.verifiesAs(token, { agent: LOCAL }),
        async () => (await api.call(api.agents, api.agents.createAgentToken, { name: LOCAL, ttl: undefined })).token,
      ));
      await createLocalTarget(api);
    } finally {
      api.close();
    }
    agent = new TaskgateAgent({
      server: address,
      token: agentToken,
      name: LOCAL,
      workDir: devWorkDir(serverConfig.dataDir),
      env: agentEnv,
      logger: serverConfig.logger,
    });
    agent.start();
    await agent.connected();
    const started = agent;
    return {
      address,
      adminToken: admin.token,
      httpUrl: server.httpUrl,
      signInLink: await server.signInLink(admin.token),
      async stop() {
        await started.stop();
        await running.stop();
      },
    };
  } catch (err) {
    await agent?.stop().catch(() => undefined);
    await running.stop().catch(() => undefined);
    throw err;
  }
}

/** What `taskgate dev` prints once it runs. */
export function devBanner(config: DevConfig, dev: DevProgram): string {
  // The CLI finds .taskgate/admin.token by itself; a token elsewhere (--data-dir) is named.
  const tokenFile = join(config.dataDir, 'admin.token');
  const flags = `${dev.address === SERVER_DEFAULTS.listen ? '' : ` --server ${dev.address}`}${tokenFile === DEV_TOKEN_FILE ? '' : ` --token-file ${tokenFile}`}`;
  return [
    `Taskgate dev: server on ${dev.address} (${config.mongodbUri ? 'MongoDB' : `embedded store in ${config.dataDir}`}), agent "${LOCAL}" connected.`,
    `Admin ${config.adminEmail}, token (in ${tokenFile}): ${dev.adminToken}`,
    '',
    'In another shell, from this directory:',
    `  npx taskgate tasks create -t ${LOCAL} -s 'echo hello' --wait${flags}`,
    `  npx taskgate tasks list${flags}`,
    ...(dev.signInLink ? ['', 'The web console: open this one-time link to sign in as the admin (valid for a day, once):', `  ${dev.signInLink}`] : []),
    ...(dev.httpUrl
      ? ['', `The same API over HTTP (Connect; docs/console.md):`, `  curl -H "authorization: Bearer $(cat ${join(config.dataDir, 'admin.token')})" -H 'content-type: application/json' -d '{}' ${dev.httpUrl}/taskgate.v1.TaskService/ListTasks`]
      : []),
    '',
    'Ctrl-C stops both.',
    '',
  ].join('\n');
}

/** The bash target "local" on the local agent, through TargetService.CreateTarget; one already there is kept as it is. */
async function createLocalTarget(api: Api): Promise<void> {
  const target = Target.fromPartial({
    name: LOCAL,
    type: 'bash',
    agent: LOCAL,
    message: 'runs on this machine',
    review: ReviewMode.REVIEW_MODE_NONE,
    allowTypeOverride: true,
  });
  try {
    await api.call(api.targets, api.targets.createTarget, { target });
  } catch (err) {
    if (!(isServiceError(err) && err.code === status.ALREADY_EXISTS)) throw err;
  }
}

/** Where `taskgate dev` keeps its agent's task directories: outside the data dir, which holds the admin token. */
function devWorkDir(dataDir: string): string {
  const id = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12);
  return join(tmpdir(), `taskgate-dev-agent-${id}`);
}
