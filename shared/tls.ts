/**
 * Client-side TLS for the CLI and the agent: verify the server against a CA
 * file (or the system roots), and present a client certificate for mutual
 * TLS. Plaintext when none is asked for (docs/operations.md).
 */
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';

/** TLS settings of a client. */
export interface ClientTls {
  /** Use TLS with the system's root certificates. */
  tls?: boolean;
  /** PEM file of the CA that signed the server's certificate (implies TLS). */
  tlsCa?: string;
  /** PEM client certificate and key, for mutual TLS (implies TLS). */
  tlsCert?: string;
  tlsKey?: string;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Whether the settings ask for TLS. */
export function usesTls(o: ClientTls): boolean {
  return Boolean(o.tls || o.tlsCa || o.tlsCert || o.tlsKey);
}

/** Channel credentials for the settings. */
export function channelCredentials(o: ClientTls): ChannelCredentials {
  if (!usesTls(o)) return credentials.createInsecure();
  if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new Error('a client certificate needs both --tls-cert and --tls-key');
  return credentials.createSsl(
    o.tlsCa ? read(o.tlsCa, 'CA file') : null,
    o.tlsKey ? read(o.tlsKey, 'client key') : null,
    o.tlsCert ? read(o.tlsCert, 'client certificate') : null,
  );
}
