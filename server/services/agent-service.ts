/** AgentService: the agents' stream, and agent administration. */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import {
  AgentServiceService,
  type ConnectRequest,
  type ConnectResponse,
  type CreateAgentTokenRequest,
  type CreateAgentTokenResponse,
  type ListAgentsResponse,
} from '../../gen/taskgate/v1/agent.js';
import { PermissionDeniedError } from '../../shared/errors.js';
import type { EventPublisher } from '../audit.js';
import { actorOf, type Authenticator } from '../auth.js';
import { AgentSession, type SessionDeps } from '../agent-session.js';
import { agentToWire } from '../convert.js';
import { checkName, checkTtl } from '../validate.js';
import type { AgentContext, ServiceSpec, UserContext } from '../rpc/core.js';

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

/** The AgentService implementation. */
export function agentService(auth: Authenticator, deps: SessionDeps, audit: EventPublisher): ServiceSpec<typeof AgentServiceService> {
  /** The agent stream: the session owns the call once the caller is known to be this agent. */
  async function connect(call: ServerDuplexStream<ConnectRequest, ConnectResponse>, { agent }: AgentContext): Promise<void> {
    if (deps.requireAgentCertificate) checkAgentCertificate(call, agent.name);
    new AgentSession(call, agent, deps);
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

  async function createAgentToken(req: CreateAgentTokenRequest, { user }: UserContext): Promise<CreateAgentTokenResponse> {
    const name = checkName('name', req.name);
    const { secret, record } = await auth.issue('agent', name, { createdBy: actorOf(user), expires: checkTtl('ttl', req.ttl, new Date()) });
    const expiry = record.expires ? `, expires ${record.expires.toISOString()}` : '';
    await audit.record({ actor: actorOf(user), action: 'token.created', resource: `tokens/${record.id}`, detail: `agent token for ${name}${expiry}` });
    if (!(await deps.store.getAgent(name))) {
      await deps.store.putAgent({ name, version: '', bootId: '', lastSeen: null, connected: false, tokenId: '', secretHashes: [] });
    }
    return { token: secret, name };
  }

  return {
    definition: AgentServiceService,
    access: { connect: 'agent', listAgents: 'user', createAgentToken: 'admin' },
    methods: { connect, listAgents, createAgentToken },
  };
}
