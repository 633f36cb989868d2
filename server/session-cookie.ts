/**
 * The console's session cookie (docs/console.md "Signing in"): its name,
 * and reading it from a request. The cookie itself is set by
 * server/console-http.ts; the Connect adapter reads it.
 */

/** The session cookie's name: `__Host-` under TLS (the browser then insists on Secure, Path=/ and no Domain). */
export function sessionCookieName(tls: boolean): string {
  return tls ? '__Host-taskgate_session' : 'taskgate_session';
}

/** The session secret a request's Cookie header carries, if any. */
export function sessionFromCookies(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}
