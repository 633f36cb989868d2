/** AgentService: the agents' stream, and agent administration. */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type {
  AgentServiceServer,
  ConnectRequest,
  ConnectResponse,
  CreateAgentTokenRequest,
  CreateAgentTokenResponse,
  ListAgentsResponse,
} from '../../gen/taskgate/v1/agent.js';
import { PermissionDeniedError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { authorizeAgent } from '../access.js';
import type { EventPublisher } from '../audit.js';
import { actorOf, type Authenticator } from '../auth.js';
import { AgentSession, type SessionDeps } from '../agent-session.js';
import { agentToWire } from '../convert.js';
import { toServiceError } from '../grpc-status.js';
import { checkName } from '../validate.js';
import type { HandlerContext, HandlerFactory } from './handler.js';

/** The AgentService implementation. */
/**
 * With mutual TLS for agents, the stream must come with a client certificate
 * (only the agent address asks for one, and it is verified against the CA
 * there) whose subject CN or one of its DNS names is the agent's name.
 */
function checkAgentCertificate(call: ServerDuplexStream<ConnectRequest, ConnectResponse>, agent: string): void {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert) {
    throw new PermissionDeniedError('this server requires agents to connect over mutual TLS: use its agent address (--agent-listen) with a client certificate');
  }
  const names = [cert.subject?.CN, ...(cert.subjectaltname ?? '').split(/,\s*/).filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4))]
    .flat()
    .filter((n, i, all): n is string => typeof n === 'string' && n !== '' && all.indexOf(n) === i);
  if (!names.includes(agent)) {
    throw new PermissionDeniedError(`the client certificate names ${names.map((n) => `"${n}"`).join(', ') || 'nobody'}, not agent "${agent}"`);
  }
}

export function agentService(
  auth: Authenticator,
  deps: SessionDeps,
  audit: EventPublisher,
  h: HandlerFactory,
  logger: Logger,
): AgentServiceServer {
  function connect(call: ServerDuplexStream<ConnectRequest, ConnectResponse>): void {
    auth
      .authenticate(call.metadata)
      .then((principal) => {
        authorizeAgent(principal);
        if (principal.kind !== 'agent') return;
        if (deps.requireAgentCertificate) checkAgentCertificate(call, principal.name);
        new AgentSession(call, principal, deps);
      })
      .catch((err: unknown) => call.emit('error', toServiceError(err, logger, 'AgentService/Connect')));
  }

  async function listAgents(): Promise<ListAgentsResponse> {
    const agents = await deps.store.listAgents();
    return {
      agents: agents.map((agent) => {
        const session = deps.dispatcher.get(agent.name);
        return agentToWire(agent, {
          connected: session !== undefined || agent.connected,
          runningTasks: session?.running.size ?? 0,
        });
      }),
    };
  }

  async function createAgentToken(req: CreateAgentTokenRequest, { user }: HandlerContext): Promise<CreateAgentTokenResponse> {
    const name = checkName('name', req.name);
    const { secret, record } = await auth.issue('agent', name, { createdBy: actorOf(user) });
    await audit.record({ actor: actorOf(user), action: 'token.created', resource: `tokens/${record.id}`, detail: `agent token for ${name}` });
    if (!(await deps.store.getAgent(name))) {
      await deps.store.putAgent({ name, version: '', bootId: '', lastSeen: null, connected: false, tokenId: '', secretHashes: [] });
    }
    return { token: secret, name };
  }

  return {
    connect,
    listAgents: h.unary('AgentService/ListAgents', 'user', listAgents),
    createAgentToken: h.unary('AgentService/CreateAgentToken', 'admin', createAgentToken),
  };
}
