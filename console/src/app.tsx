/**
 * The console's layout and routes. Until WhoAmI answers nothing but a
 * loading line shows; signed out, every path but /sign-in goes there (with
 * the wanted page kept in `next`); signed in, the nav and the page.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { User } from '../../gen/es/taskgate/v1/user_pb.js';
import { errorMessage } from './api.js';
import { AgentsPage } from './pages/agents.js';
import { AuditPage } from './pages/audit.js';
import { NewTaskPage } from './pages/new-task.js';
import { ReviewsPage } from './pages/reviews.js';
import { SignInPage } from './pages/sign-in.js';
import { TargetsPage } from './pages/targets.js';
import { TaskPage } from './pages/task.js';
import { TasksPage } from './pages/tasks.js';
import { UsersPage } from './pages/users.js';
import { currentUrl, navigate, safeNext, usePlace, withQuery } from './router.js';
import { isAdmin, refreshSession, session, signOut } from './session.js';
import { useStore } from './store.js';
import { useWatchTasks } from './watch-tasks.js';

/** Most tasks the Reviews badge counts; a full page shows "500+". */
const REVIEW_BADGE_PAGE = 500;

function Nav({ user }: { user: User }) {
  const { path } = usePlace();
  const reviews = useWatchTasks({ awaitingMyReview: true, pageSize: REVIEW_BADGE_PAGE });
  const count = reviews.tasks.length;
  const badge = count >= REVIEW_BADGE_PAGE ? `${REVIEW_BADGE_PAGE}+` : String(count);
  const admin = isAdmin(user);
  const link = (href: string, label: string, extra?: ComponentChildren) => (
    <li>
      <a href={href} aria-current={path === href || path.startsWith(`${href}/`) ? 'page' : undefined}>
        {label}
        {extra}
      </a>
    </li>
  );
  return (
    <header class="top">
      <a class="brand" href="/tasks">
        Taskgate
      </a>
      <nav aria-label="Main">
        <ul>
          {link('/tasks', 'Tasks')}
          {link(
            '/reviews',
            'Reviews',
            reviews.synced ? (
              <span class="badge" data-testid="review-count" aria-label={`${badge} waiting for your review`}>
                {badge}
              </span>
            ) : null,
          )}
          {link('/new', 'New task')}
          {link('/targets', 'Targets')}
          {link('/agents', 'Agents')}
          {admin ? link('/admin/users', 'Users & tokens') : null}
          {admin ? link('/admin/audit', 'Audit') : null}
        </ul>
      </nav>
      <div class="who">
        <span data-testid="signed-in-as">{user.email}</span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </div>
    </header>
  );
}

function Page({ user }: { user: User }) {
  const { path } = usePlace();
  if (path === '/' || path === '/tasks') return <TasksPage />;
  const task = /^\/tasks\/([^/]+)$/.exec(path);
  if (task) return <TaskPage id={decodeURIComponent(task[1]!)} user={user} />;
  if (path === '/reviews') return <ReviewsPage user={user} />;
  if (path === '/new') return <NewTaskPage user={user} />;
  if (path === '/targets') return <TargetsPage />;
  if (path === '/agents') return <AgentsPage />;
  if (path === '/admin/users') return isAdmin(user) ? <UsersPage /> : <Forbidden />;
  if (path === '/admin/audit') return isAdmin(user) ? <AuditPage /> : <Forbidden />;
  if (path === '/sign-in') {
    // Signed in already: go where the link wanted.
    navigate(safeNext(new URLSearchParams(location.search).get('next')), true);
    return null;
  }
  return (
    <main>
      <h1>Not found</h1>
      <p>
        No page at this address. <a href="/tasks">Tasks</a>
      </p>
    </main>
  );
}

function Forbidden() {
  return (
    <main>
      <h1>Admins only</h1>
      <p>This page is for the admin group.</p>
    </main>
  );
}

/** The whole console. */
export function App() {
  const current = useStore(session);
  const { path } = usePlace();
  const [error, setError] = useState('');

  useEffect(() => {
    refreshSession().catch((e: unknown) => setError(errorMessage(e)));
  }, []);

  useEffect(() => {
    if (current.state === 'signed-out' && path !== '/sign-in') {
      const next = currentUrl();
      navigate(withQuery('/sign-in', { next: next === '/' ? '' : next }), true);
    }
  }, [current.state, path]);

  if (error && current.state === 'loading') {
    return (
      <main>
        <h1>Taskgate</h1>
        <p class="error" role="alert">
          Cannot reach the server: {error}
        </p>
      </main>
    );
  }
  if (current.state === 'loading') return <p class="loading">Loading…</p>;
  if (current.state === 'signed-out') return path === '/sign-in' ? <SignInPage /> : null;
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <Nav user={current.user} />
      <div id="content" tabIndex={-1}>
        <Page user={current.user} />
      </div>
    </>
  );
}
