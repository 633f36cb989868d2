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
        if (principal.kind === 'agent') new AgentSession(call, principal, deps);
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
      await deps.store.putAgent({ name, version: '', bootId: '', lastSeen: null, connected: false });
    }
    return { token: secret, name };
  }

  return {
    connect,
    listAgents: h.unary('AgentService/ListAgents', 'user', listAgents),
    createAgentToken: h.unary('AgentService/CreateAgentToken', 'admin', createAgentToken),
  };
}
