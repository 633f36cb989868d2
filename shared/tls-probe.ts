/**
 * Whether a server speaks TLS, by trying a TLS handshake of our own (no
 * certificate check: only the protocol is in question). A plaintext gRPC
 * client against a TLS server sees only a dropped connection; this tells
 * the CLI and the agent to say "it speaks TLS" instead.
 */
import { connect } from 'node:tls';

/** Resolves true when a TLS handshake with HOST:PORT completes within `timeoutMs`. */
export function speaksTls(address: string, timeoutMs = 2000): Promise<boolean> {
  const m = /^(?:dns:\/\/\/)?(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const socket = connect({ host: m[1] ?? m[2], port: Number(m[3]), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (yes: boolean): void => {
      socket.destroy();
      resolve(yes);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** OpenSSL's words for "this is not TLS" as a TLS client sees them. */
export const NOT_TLS = /wrong version number|packet length too long|WRONG_VERSION_NUMBER/i;
