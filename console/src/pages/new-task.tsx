/**
 * New task: a target the caller may use, the script in an editor with the
 * type's language, a message and a time limit; says who must approve.
 * CreateTask carries a request id, kept while the form is unchanged, so a
 * double click or a retry after a lost answer makes one task.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Target } from '../../../gen/es/taskgate/v1/target_pb.js';
import type { User } from '../../../gen/es/taskgate/v1/user_pb.js';
import { errorMessage, requestId, taskService, targetService } from '../api.js';
import { CodeEditor } from '../code-editor.js';
import { ErrorLine } from '../components.js';
import { reviewRule } from '../format.js';
import { navigate, usePlace } from '../router.js';
import { isAdmin } from '../session.js';

/** Task types (docs/target-types.md). */
const TYPES = ['bash', 'sh', 'python', 'node', 'postgres', 'mysql'];

/** Whether `user` may create tasks on `target`. */
function mayUse(target: Target, user: User): boolean {
  if (target.active === false) return false;
  return isAdmin(user) || target.groups.length === 0 || target.groups.some((group) => user.groups.includes(group));
}

/** The New task page. */
export function NewTaskPage({ user }: { user: User }) {
  const { query } = usePlace();
  const [targets, setTargets] = useState<Target[] | undefined>(undefined);
  const [name, setName] = useState(query.get('target') ?? '');
  const [type, setType] = useState('');
  const [script, setScript] = useState('');
  const [message, setMessage] = useState('');
  const [timeout, setTimeoutSeconds] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [attempt, setAttempt] = useState<{ key: string; id: string } | undefined>(undefined);

  useEffect(() => {
    targetService
      .listTargets({ pageSize: 500 })
      .then((response) => {
        const usable = response.targets.filter((target) => mayUse(target, user));
        setTargets(usable);
        setName((current) => (usable.some((target) => target.name === current) ? current : (usable[0]?.name ?? '')));
      })
      .catch((e: unknown) => setError(errorMessage(e)));
  }, [user]);

  const target = targets?.find((t) => t.name === name);
  const effectiveType = target?.allowTypeOverride && type ? type : (target?.type ?? '');

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy || !target) return;
    const request = {
      target: target.name,
      script,
      message,
      type: target.allowTypeOverride && type && type !== target.type ? type : '',
      timeoutSeconds: timeout === '' ? 0 : Number(timeout),
    };
    // The same form sent again is the same request: keep its id.
    const key = JSON.stringify(request);
    const id = attempt?.key === key ? attempt.id : requestId();
    setAttempt({ key, id });
    setBusy(true);
    setError('');
    try {
      const response = await taskService.createTask({ ...request, requestId: id });
      if (response.task) navigate(`/tasks/${encodeURIComponent(response.task.id)}`);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  if (targets === undefined) {
    return (
      <main>
        <h1>New task</h1>
        {error ? <ErrorLine error={error} /> : <p class="loading">Loading…</p>}
      </main>
    );
  }
  if (targets.length === 0) {
    return (
      <main>
        <h1>New task</h1>
        <p>There is no active target you may use. An admin can add you to a target’s groups.</p>
      </main>
    );
  }
  return (
    <main>
      <h1>New task</h1>
      <form class="new-task" onSubmit={(event) => void submit(event)}>
        <label for="new-target">Target</label>
        <select id="new-target" value={name} onChange={(event) => setName(event.currentTarget.value)}>
          {targets.map((t) => (
            <option key={t.name} value={t.name}>
              {t.name} ({t.type})
            </option>
          ))}
        </select>
        {target ? (
          <p class="hint" data-testid="review-rule">
            {target.message ? `${target.message} · ` : ''}
            {reviewRule(target)}
          </p>
        ) : null}
        {target?.allowTypeOverride ? (
          <>
            <label for="new-type">Type</label>
            <select id="new-type" value={type || target.type} onChange={(event) => setType(event.currentTarget.value)}>
              {TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                  {t === target.type ? ' (target default)' : ''}
                </option>
              ))}
            </select>
          </>
        ) : null}
        <span class="label" id="new-script-label">
          Script ({effectiveType})
        </span>
        <CodeEditor type={effectiveType} value={script} onChange={setScript} label={`Script (${effectiveType})`} />
        <label for="new-message">Message for reviewers</label>
        <textarea id="new-message" rows={3} value={message} onInput={(event) => setMessage(event.currentTarget.value)} />
        <label for="new-timeout">Time limit in seconds</label>
        <input
          id="new-timeout"
          type="number"
          min={0}
          step={1}
          inputMode="numeric"
          placeholder={target?.timeoutSeconds ? `target default: ${target.timeoutSeconds}` : 'none'}
          value={timeout}
          onInput={(event) => setTimeoutSeconds(event.currentTarget.value)}
        />
        <ErrorLine error={error} />
        <div class="buttons">
          <button type="submit" disabled={busy || script.trim() === ''}>
            {busy ? 'Creating…' : 'Create task'}
          </button>
        </div>
      </form>
    </main>
  );
}
