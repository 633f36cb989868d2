/**
 * Who is signed in. The session itself is an HttpOnly cookie that script
 * never sees: signing in trades a user token for it (POST /auth/sign-in),
 * WhoAmI says whose it is, and any call refused as unauthenticated (signed
 * out elsewhere, the session or its token revoked, expired) ends it here.
 */
import { Code } from '@connectrpc/connect';
import type { User } from '../../gen/es/taskgate/v1/user_pb.js';
import { hasCode, onUnauthenticated, userService } from './api.js';
import { navigate } from './router.js';
import { createStore } from './store.js';

/** The session: not known yet, signed out, or the signed-in user. */
export type Session = { state: 'loading' } | { state: 'signed-out' } | { state: 'signed-in'; user: User };

export const session = createStore<Session>({ state: 'loading' });

onUnauthenticated(() => {
  if (session.get().state !== 'signed-out') session.set({ state: 'signed-out' });
});

/** Asks the server who is signed in; a failure other than unauthenticated is thrown. */
export async function refreshSession(): Promise<void> {
  try {
    const { user } = await userService.whoAmI({});
    if (!user) throw new Error('this session is not a user’s');
    session.set({ state: 'signed-in', user });
  } catch (error) {
    if (hasCode(error, Code.Unauthenticated)) session.set({ state: 'signed-out' });
    else throw error;
  }
}

/** Whether `user` is in the admin group. */
export function isAdmin(user: User): boolean {
  return user.groups.includes('admin');
}

/** The actor string events and tasks use for `user` ("user:EMAIL"). */
export function actorOf(user: User): string {
  return `user:${user.email}`;
}

interface AuthError {
  code?: string;
  message?: string;
}

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
}

/** Trades a user token for a session cookie; throws the server's one line on refusal. */
export async function signIn(token: string): Promise<void> {
  const response = await post('/auth/sign-in', { token });
  if (!response.ok) {
    let message = `sign-in failed (HTTP ${response.status})`;
    try {
      const body = (await response.json()) as AuthError;
      if (body.message) message = body.message;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new Error(message);
  }
  await refreshSession();
}

/**
 * Ends the session (the server clears the cookie and revokes it) and shows
 * the sign-in page, with no page to go back to (the place is changed before
 * the state, so nothing records the page signed out from as `next`).
 */
export async function signOut(): Promise<void> {
  try {
    await post('/auth/sign-out', {});
  } finally {
    navigate('/sign-in', true);
    session.set({ state: 'signed-out' });
  }
}
