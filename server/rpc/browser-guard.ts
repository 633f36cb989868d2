/**
 * What the HTTP listener asks of every API call before Connect sees it, so
 * that a page on another site cannot make a signed-in browser act
 * (docs/console.md "Cross-site requests"):
 *
 * - the body is one of the RPC content types (Connect's JSON or binary,
 *   gRPC-Web). An HTML form can send only urlencoded, multipart or
 *   text/plain bodies, and a cross-site script that sends another type
 *   needs a CORS preflight, which this server never grants;
 * - an `Origin` header, when there is one, is this listener's own origin
 *   (scheme, and the Host the request was sent to): browsers send it on
 *   every cross-origin POST, and only the browser sets it. `Sec-Fetch-Site`,
 *   when there is one, says same-origin.
 *
 * Clients that are not browsers (curl, SDKs) send no Origin and pass.
 */
import { Code } from './status.js';
import { writeConnectError, type NodeHandler, type NodeRequest, type NodeResponse } from './connect.js';

/** The content types of the RPC protocols served (without parameters such as charset). */
const RPC_CONTENT_TYPES = new Set([
  'application/json',
  'application/proto',
  'application/connect+json',
  'application/connect+proto',
  'application/grpc-web',
  'application/grpc-web+proto',
  'application/grpc-web+json',
]);

/** Connect's names of the codes sent here (the Connect protocol spells codes in snake_case). */
const CODE_NAMES = { [Code.INVALID_ARGUMENT]: 'invalid_argument', [Code.PERMISSION_DENIED]: 'permission_denied' } as const;

/** Why a request is refused, or undefined when it may go on. */
export function refusal(req: NodeRequest, tls: boolean): { http: number; code: keyof typeof CODE_NAMES; message: string } | undefined {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (!RPC_CONTENT_TYPES.has(type)) {
    return {
      http: 415,
      code: Code.INVALID_ARGUMENT,
      message: `content type "${type}" is not an RPC content type: send application/json (or application/proto) as Connect does`,
    };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const host = req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '';
    const own = `${tls ? 'https' : 'http'}://${host}`;
    if (origin.toLowerCase() !== own.toLowerCase()) {
      return { http: 403, code: Code.PERMISSION_DENIED, message: `cross-origin request refused: Origin ${origin} is not this server's (${own})` };
    }
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return { http: 403, code: Code.PERMISSION_DENIED, message: `cross-origin request refused: the browser says it comes from a ${site} page` };
  }
  return undefined;
}

/** `next` behind the guard: a refused request gets a Connect error (JSON, as Connect's unary errors are) and never reaches it. */
export function guardBrowsers(next: NodeHandler, options: { tls: boolean }): NodeHandler {
  return (req: NodeRequest, res: NodeResponse) => {
    // Only POST reaches an RPC; other methods (static files later) are not API calls.
    const refused = req.method === 'POST' ? refusal(req, options.tls) : undefined;
    if (!refused) {
      next(req, res);
      return;
    }
    writeConnectError(req, res, refused.http, CODE_NAMES[refused.code], refused.message);
  };
}
