/** Targets: every target with what it runs, where, for whom and who reviews. */
import { useEffect, useState } from 'preact/hooks';
import type { Target } from '../../../gen/es/taskgate/v1/target_pb.js';
import { errorMessage, targetService } from '../api.js';
import { ErrorLine, TableWrap } from '../components.js';
import { reviewRule } from '../format.js';

/** The targets page. */
export function TargetsPage() {
  const [targets, setTargets] = useState<Target[] | undefined>(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    targetService
      .listTargets({ pageSize: 500 })
      .then((response) => setTargets(response.targets))
      .catch((e: unknown) => setError(errorMessage(e)));
  }, []);
  return (
    <main>
      <h1>Targets</h1>
      <ErrorLine error={error} />
      {targets === undefined && !error ? <p class="loading">Loading…</p> : null}
      {targets?.length === 0 ? <p>No targets yet.</p> : null}
      {targets && targets.length > 0 ? (
        <TableWrap label="Targets">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Agent</th>
              <th scope="col">Review</th>
              <th scope="col">Who may use it</th>
              <th scope="col">Active</th>
              <th scope="col">Time limit</th>
              <th scope="col">Redaction</th>
              <th scope="col">Secrets</th>
              <th scope="col">Description</th>
            </tr>
          </thead>
          <tbody>
            {targets.map((target) => (
              <tr key={target.name}>
                <td>
                  <a href={`/new?target=${encodeURIComponent(target.name)}`} title="New task on this target">
                    {target.name}
                  </a>
                </td>
                <td>
                  {target.type}
                  {target.allowTypeOverride ? ' (others allowed)' : ''}
                </td>
                <td>{target.agent}</td>
                <td>{reviewRule(target)}</td>
                <td>{target.groups.length ? target.groups.join(', ') : 'every user'}</td>
                <td>{target.active === false ? 'no' : 'yes'}</td>
                <td>{target.timeoutSeconds ? `${target.timeoutSeconds} s` : 'none'}</td>
                <td>{[...target.redact, ...target.customDetectors.map((d) => d.infoType)].join(', ') || 'none'}</td>
                <td>{target.secretProvider || 'none'}</td>
                <td class="pre">{target.message}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : null}
    </main>
  );
}
