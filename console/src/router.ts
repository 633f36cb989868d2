/**
 * Client-side routes on the history API: plain links (`<a href="/tasks/ID">`)
 * are followed without a page load, so every page has a shareable URL and
 * the server answers any such path with index.html.
 */
import { createStore, useStore } from './store.js';

/** Where the console is: the path and its query. */
export interface Place {
  path: string;
  query: URLSearchParams;
}

function here(): Place {
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

const place = createStore<Place>(here());

/** The current place; re-renders on navigation. */
export function usePlace(): Place {
  return useStore(place);
}

/** Goes to `url` (same origin) without a page load; `replace` keeps it out of the history. */
export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  place.set(here());
  if (!replace) window.scrollTo(0, 0);
}

/** The current path with its query, for "come back here after signing in". */
export function currentUrl(): string {
  return location.pathname + location.search;
}

/** A URL with `path` and the non-empty entries of `params`. */
export function withQuery(path: string, params: Record<string, string | boolean | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === true) query.set(key, '1');
    else if (typeof value === 'string' && value !== '') query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Follows clicks on same-origin links in the page and the back/forward buttons. */
export function startRouter(): void {
  addEventListener('popstate', () => place.set(here()));
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = (event.target as Element | null)?.closest?.('a');
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin) return;
    // An anchor on this page ("Skip to content"): the browser's own behaviour.
    if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
    // Server routes (downloads, sign-in links) are not console pages.
    if (url.pathname.startsWith('/download/') || url.pathname.startsWith('/auth/')) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
}

/** A `next` parameter if it is a path on this site, else /tasks (no open redirect). */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') && !next.startsWith('/sign-in') ? next : '/tasks';
}
