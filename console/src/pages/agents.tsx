/** Agents: each agent, whether it is connected, its version, when it was last seen, what it runs. */
import { useEffect, useState } from 'preact/hooks';
import type { Agent } from '../../../gen/es/taskgate/v1/agent_pb.js';
import { agentService, errorMessage } from '../api.js';
import { ErrorLine, TableWrap, Time } from '../components.js';

/** The agents page, read again every 10 s. */
export function AgentsPage() {
  const [agents, setAgents] = useState<Agent[] | undefined>(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    let stopped = false;
    const load = (): void => {
      agentService
        .listAgents({})
        .then((response) => {
          if (!stopped) {
            setAgents(response.agents);
            setError('');
          }
        })
        .catch((e: unknown) => !stopped && setError(errorMessage(e)));
    };
    load();
    const timer = setInterval(load, 10_000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <main>
      <h1>Agents</h1>
      <ErrorLine error={error} />
      {agents === undefined && !error ? <p class="loading">Loading…</p> : null}
      {agents?.length === 0 ? <p>No agent has connected or been given a token yet.</p> : null}
      {agents && agents.length > 0 ? (
        <TableWrap label="Agents">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Connected</th>
              <th scope="col">Version</th>
              <th scope="col">Last seen</th>
              <th scope="col">Running tasks</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((agent) => (
              <tr key={agent.name}>
                <td>{agent.name}</td>
                <td>
                  <span class={agent.connected ? 'status status-success' : 'status status-killed'}>{agent.connected ? 'connected' : 'offline'}</span>
                </td>
                <td>{agent.version}</td>
                <td>
                  <Time time={agent.lastSeen} />
                </td>
                <td>{agent.runningTasks}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : null}
    </main>
  );
}
