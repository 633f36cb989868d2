/**
 * Sign in with a user token (`taskgate tokens create --user EMAIL`, or the admin token
 * `taskgate dev` prints): it is sent once to POST /auth/sign-in, which sets
 * an HttpOnly session cookie; the token is not kept in the page. A bad
 * one-time link (/auth/link) comes back here with `error`.
 */
import { useState } from 'preact/hooks';
import { navigate, safeNext, usePlace } from '../router.js';
import { signIn } from '../session.js';

/** The sign-in form. */
export function SignInPage() {
  const { query } = usePlace();
  const [token, setToken] = useState('');
  const [error, setError] = useState(query.get('error') ?? '');
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      await signIn(token.trim());
      setToken('');
      navigate(safeNext(query.get('next')), true);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>Sign in to Taskgate</h1>
      <form onSubmit={(event) => void submit(event)}>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(event) => setToken(event.currentTarget.value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="hint">
          A user token (tg_user_…): <code>taskgate tokens create --user EMAIL</code>, or the link <code>taskgate dev</code> prints.
        </p>
        {error ? (
          <p class="error" role="alert" data-testid="sign-in-error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
