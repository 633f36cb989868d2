/**
 * The HTTP listener's own routes, around the API (docs/console.md):
 *
 * - `POST /auth/sign-in` exchanges a user token for a console session (a
 *   token of kind "session", server/auth.ts) held in an HttpOnly,
 *   SameSite=Strict cookie (Secure, with the `__Host-` prefix, under TLS);
 *   `POST /auth/sign-out` ends it; `GET /auth/link?code=…` is the one-time
 *   sign-in link `taskgate dev` prints. The POSTs pass the same cross-site
 *   guard as the API (server/rpc/browser-guard.ts).
 * - `GET /download/tasks/ID/output`: a task's raw output as a file, for
 *   whoever may read it (cookie or bearer token).
 * - Every other GET: the console's build output (dist/console), with a
 *   Content-Security-Policy that allows no inline script; paths without a
 *   file extension are the console's own routes and get its index.html.
 *
 * Everything else (the RPCs) goes on to the API handler.
 */
import { randomBytes } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../shared/logger.js';
import { DataLossError, InvalidArgumentError, NotFoundError, UnauthenticatedError } from '../shared/errors.js';
import { maySeeTask } from './access.js';
import type { Authenticator, Principal } from './auth.js';
import type { AuthFailureLimits, RateLimits } from './rate-limits.js';
import { refusal } from './rpc/browser-guard.js';
import { writeConnectError, type NodeHandler, type NodeRequest, type NodeResponse } from './rpc/connect.js';
import { Code, toRpcError } from './rpc/status.js';
import type { AuditEventRecord, OutputStore, TargetStore, TaskStore, UserStore, TokenRecord } from './store/store.js';
import { sessionCookieName, sessionFromCookies } from './session-cookie.js';

/** The console's build output: dist/console beside dist/server. */
export const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));

/** What the console's pages may load and run: only this origin's files, no inline script, no framing. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // xterm.js and CodeMirror set styles from script.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

/** Headers every page and file of the console is sent with. */
const PAGE_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
} as const;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** How long a one-time sign-in link stays valid, in ms. */
const LINK_MS = 24 * 60 * 60 * 1000;
/** The largest sign-in request body read, in bytes. */
const MAX_SIGN_IN_BYTES = 16 * 1024;
/** Chunks read from the store per round trip when sending a download. */
const DOWNLOAD_BATCH = 256;
/** …and bytes (4 MiB) per store read. */
const DOWNLOAD_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * One-time sign-in links (`taskgate dev` prints one): a random code that
 * signs in once, within a day, as the user token it was made from. Kept in
 * this server's memory: a link works on the server that printed it, until
 * it restarts.
 */
export class SignInLinks {
  readonly #codes = new Map<string, { tokenId: string; until: number }>();

  /** A new code for the user token `tokenId`. */
  create(tokenId: string): string {
    const now = Date.now();
    for (const [code, link] of this.#codes) if (link.until <= now) this.#codes.delete(code);
    const code = randomBytes(24).toString('base64url');
    this.#codes.set(code, { tokenId, until: now + LINK_MS });
    return code;
  }

  /** The token id of a valid code, which is then used up; undefined for an unknown, used or expired one. */
  take(code: string): string | undefined {
    const link = this.#codes.get(code);
    this.#codes.delete(code);
    return link && link.until > Date.now() ? link.tokenId : undefined;
  }
}

/** What the console's routes need. */
export interface ConsoleRoutesOptions {
  auth: Authenticator;
  store: TaskStore & OutputStore & TargetStore & UserStore;
  audit: { record(event: Omit<AuditEventRecord, 'id' | 'time' | 'from' | 'to'>): Promise<void> };
  links: SignInLinks;
  failures: AuthFailureLimits;
  tls: boolean;
  /** Where the console's build output is (default {@link CONSOLE_DIR}). */
  staticDir?: string;
  /** The per-caller limits the API's calls take from (a download is a call and an open stream). */
  limits: RateLimits;
  /** The API (Connect, behind the cross-site guard). */
  api: NodeHandler;
  logger: Logger;
}

/** HTTP statuses and Connect names of the codes these routes answer with. */
const HTTP_OF: Partial<Record<Code, [number, string]>> = {
  [Code.INVALID_ARGUMENT]: [400, 'invalid_argument'],
  [Code.UNAUTHENTICATED]: [401, 'unauthenticated'],
  [Code.PERMISSION_DENIED]: [403, 'permission_denied'],
  [Code.NOT_FOUND]: [404, 'not_found'],
  [Code.RESOURCE_EXHAUSTED]: [429, 'resource_exhausted'],
  [Code.UNAVAILABLE]: [503, 'unavailable'],
  [Code.DATA_LOSS]: [500, 'data_loss'],
};

/** The console's routes in front of `options.api`. */
export function consoleRoutes(options: ConsoleRoutesOptions): NodeHandler {
  const { auth, store, audit, links, failures, limits, tls, logger } = options;
  const cookie = sessionCookieName(tls);
  const files = new StaticFiles(options.staticDir ?? CONSOLE_DIR);

  function fail(req: NodeRequest, res: NodeResponse, err: unknown): void {
    const status = toRpcError(err, (bug) => logger.error({ err: bug, path: req.url }, 'unexpected error in an HTTP route'));
    const [http, code] = HTTP_OF[status.code] ?? [500, 'internal'];
    writeConnectError(req, res, http, code, status.message);
  }

  function setCookie(value: string, maxAgeSeconds: number): string {
    return `${cookie}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${tls ? '; Secure' : ''}`;
  }

  function sessionCookie(session: TokenRecord, secret: string): string {
    const seconds = Math.max(0, Math.floor(((session.expires?.getTime() ?? Date.now()) - Date.now()) / 1000));
    return setCookie(secret, seconds);
  }

  async function started(session: TokenRecord, via: string): Promise<void> {
    await audit.record({ actor: `user:${session.subject}`, action: 'session.created', resource: `tokens/${session.id}`, detail: `console session, ${via} ${session.parent ?? ''}, until ${session.expires?.toISOString() ?? ''}` });
  }

  async function signIn(req: NodeRequest, res: NodeResponse): Promise<void> {
    const body = await readJson(req);
    const token = (body as { token?: unknown } | null)?.token;
    if (typeof token !== 'string' || token === '') throw new InvalidArgumentError('send {"token": "<a user token>"} as JSON');
    const peer = req.socket.remoteAddress ?? 'unknown';
    let counted = false;
    const { secret, record } = await auth.startSession(token.trim(), () => {
      failures.take(peer);
      counted = true;
    });
    if (counted) failures.refund(peer);
    await started(record, 'signed in with token');
    writeJson(res, 200, { email: record.subject, expires: record.expires?.toISOString() ?? '' }, { 'set-cookie': sessionCookie(record, secret) });
  }

  async function signOut(req: NodeRequest, res: NodeResponse): Promise<void> {
    req.resume();
    const secret = sessionFromCookies(req.headers.cookie, cookie);
    const session = secret ? await auth.find(secret) : null;
    if (session?.kind === 'session' && !session.revoked) {
      await store.revokeToken(session.id, new Date());
      auth.invalidate();
      await audit.record({ actor: `user:${session.subject}`, action: 'session.ended', resource: `tokens/${session.id}`, detail: 'signed out' });
    }
    writeJson(res, 200, {}, { 'set-cookie': setCookie('', 0) });
  }

  async function link(req: NodeRequest, res: NodeResponse, url: URL): Promise<void> {
    const redirect = (to: string, headers: Record<string, string> = {}): void => {
      res.writeHead(303, { location: to, 'cache-control': 'no-store', ...PAGE_HEADERS, ...headers });
      res.end();
    };
    const tokenId = links.take(url.searchParams.get('code') ?? '');
    if (!tokenId) return redirect(`/sign-in?error=${encodeURIComponent('this sign-in link is used up or expired: sign in with a token, or restart taskgate dev for a new link')}`);
    const verdict = (await auth.recheck([tokenId])).get(tokenId);
    const parent = verdict && 'principal' in verdict ? await store.getToken(tokenId) : null;
    if (!parent) return redirect(`/sign-in?error=${encodeURIComponent(verdict && 'error' in verdict ? verdict.error.message : 'the link\'s token no longer exists')}`);
    const { secret, record } = await auth.sessionFrom(parent);
    await started(record, 'signed in with a one-time link of token');
    redirect('/', { 'set-cookie': sessionCookie(record, secret) });
  }

  /** The caller of a GET: its bearer token, or its session cookie. */
  async function caller(req: NodeRequest): Promise<Principal> {
    const peer = req.socket.remoteAddress ?? 'unknown';
    const header = req.headers.authorization;
    const secret = sessionFromCookies(req.headers.cookie, cookie);
    let counted = false;
    const beforeLookup = (): void => {
      failures.take(peer);
      counted = true;
    };
    const principal = header ? await auth.authenticate(header, beforeLookup) : secret ? await auth.verify(secret, beforeLookup) : undefined;
    if (counted) failures.refund(peer);
    if (!principal) throw new UnauthenticatedError('not signed in: sign in to the console, or send "authorization: Bearer <token>"');
    return principal;
  }

  async function download(req: NodeRequest, res: NodeResponse, id: string): Promise<void> {
    req.resume();
    const principal = await caller(req);
    limits.call(principal);
    const task = principal.kind === 'user' ? await store.getTask(id) : null;
    if (principal.kind !== 'user' || !task || !maySeeTask(principal, task, await store.getTarget(task.target))) throw new NotFoundError(`task ${id} not found`);
    // The first batch before the header: output that cannot be read from
    // its start is refused with a status and a line, not a cut connection.
    let chunks = req.method === 'HEAD' ? [] : await store.readChunks(id, { afterSeq: -1 }, DOWNLOAD_BATCH, DOWNLOAD_BATCH_BYTES);
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="task-${id}.log"`,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Output of a task still running: what is stored so far.
      'x-taskgate-task-status': task.status,
    });
    if (req.method === 'HEAD') return void res.end();
    const release = limits.openStream(principal);
    try {
      while (chunks.length > 0) {
        for (const chunk of chunks) {
          if (!(res as ServerResponse).write(chunk.data)) await drained(res);
          if (res.destroyed) return;
        }
        chunks = await store.readChunks(id, { afterSeq: chunks.at(-1)!.seq }, DOWNLOAD_BATCH, DOWNLOAD_BATCH_BYTES);
      }
      res.end();
    } finally {
      release();
    }
  }

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://taskgate.invalid');
    const path = url.pathname;
    const route = async (): Promise<void> => {
      if (req.method === 'POST' && (path === '/auth/sign-in' || path === '/auth/sign-out')) {
        const refused = refusal(req, tls);
        if (refused) return writeConnectError(req, res, refused.http, refused.code === Code.INVALID_ARGUMENT ? 'invalid_argument' : 'permission_denied', refused.message);
        return path === '/auth/sign-in' ? signIn(req, res) : signOut(req, res);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return options.api(req, res);
      // Only a GET uses the link up: a HEAD (a link preview) learns nothing and spends nothing.
      if (path === '/auth/link') return req.method === 'GET' ? link(req, res, url) : void res.writeHead(204, PAGE_HEADERS).end();
      const output = /^\/download\/tasks\/([^/]+)\/output$/.exec(path);
      if (output) return download(req, res, decodedOr404(output[1]!));
      return files.serve(req, res, path);
    };
    route().catch((err: unknown) => {
      if (err instanceof DataLossError) logger.error({ err, path }, 'stored data could not be read; the request ends DATA_LOSS');
      if (res.headersSent) {
        // Too late for a status: the download is cut short, which the browser shows as failed.
        if (!(err instanceof DataLossError)) logger.warn({ err, path }, 'an HTTP response failed after its header was sent');
        res.destroy();
        return;
      }
      fail(req, res, err);
    });
  };
}

/** Resolves when the response may be written again, or has closed. */
function drained(res: NodeResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** A path segment decoded; a malformed escape is a task no one has. */
function decodedOr404(segment: string): string {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw new NotFoundError('no such task: the id in the path is not valid');
  }
  if (id.includes('\u0000')) throw new NotFoundError('no such task: the id in the path is not valid');
  return id;
}

/** The request's JSON body, at most MAX_SIGN_IN_BYTES. */
async function readJson(req: NodeRequest): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > MAX_SIGN_IN_BYTES) throw new InvalidArgumentError(`the request body is over ${MAX_SIGN_IN_BYTES} bytes`);
    parts.push(part);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
  } catch {
    throw new InvalidArgumentError('the request body is not JSON: send {"token": "<a user token>"}');
  }
}

function writeJson(res: NodeResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/**
 * The console's files. Hashed assets (`/assets/…`) are cached for good;
 * index.html never, so a new build is picked up at the next load. Only
 * regular files inside the folder are served.
 */
class StaticFiles {
  readonly #root: string;

  #realRoot: string;

  constructor(root: string) {
    this.#root = resolve(root);
    this.#realRoot = this.#root;
    // The folder may be a link itself (or be made after the server starts).
    void realpath(this.#root).then((real) => (this.#realRoot = real), () => undefined);
  }

  async serve(req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
    req.resume();
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return this.#send(req, res, 400, 'text/plain; charset=utf-8', Buffer.from('bad path\n'), 'no-store');
    }
    // A path with no extension is one of the console's own routes (/tasks/ID): its page.
    const page = extname(decoded) === '';
    const file = resolve(this.#root, `.${page ? '/index.html' : decoded}`);
    if (!file.startsWith(this.#root + sep) || decoded.includes('\0')) return this.#send(req, res, 404, 'text/plain; charset=utf-8', Buffer.from('not found\n'), 'no-store');
    // Only files really inside the folder: a link out of it is not served.
    const real = await realpath(file).catch(() => null);
    const info = real !== null && (real === this.#realRoot || real.startsWith(this.#realRoot + sep)) ? await stat(real).catch(() => null) : null;
    if (!info?.isFile()) {
      if (page) {
        const text = 'The web console is not built: run "npm run build" (it writes dist/console), then reload.\n';
        return this.#send(req, res, 503, 'text/plain; charset=utf-8', Buffer.from(text), 'no-store');
      }
      return this.#send(req, res, 404, 'text/plain; charset=utf-8', Buffer.from('not found\n'), 'no-store');
    }
    const body = await readFile(real!);
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    const cache = decoded.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    this.#send(req, res, 200, type, body, cache);
  }

  #send(req: NodeRequest, res: NodeResponse, status: number, type: string, body: Buffer, cache: string): void {
    res.writeHead(status, { 'content-type': type, 'content-length': body.length, 'cache-control': cache, ...PAGE_HEADERS });
    if (req.method === 'HEAD') res.end();
    else (res as ServerResponse).end(body);
  }
}
