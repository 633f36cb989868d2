/**
 * Client-side TLS settings of the CLI and the agent, and the PEM files they
 * name: verify the server against a CA file (or the system roots), and
 * present a client certificate for mutual TLS. Plaintext when none is asked
 * for (docs/operations.md). Nothing here knows gRPC: each program turns the
 * PEM into its channel credentials (agentCredentials in agent/connection.ts,
 * the CLI's Api in cli/client.ts).
 */
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

/** The PEM contents the settings name; null where a file is not given. */
export interface ClientTlsPem {
  /** CA certificates to verify the server with; null: the system roots. */
  ca: Buffer | null;
  /** Client key and certificate; both or neither. */
  key: Buffer | null;
  cert: Buffer | null;
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

/**
 * Reads the files the settings name; null when they ask for no TLS (a
 * plaintext channel). Throws an Error with a one-line message a person can
 * act on when a file cannot be read or a certificate comes without its key.
 */
export function readClientTls(o: ClientTls): ClientTlsPem | null {
  if (!usesTls(o)) return null;
  if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new Error('a client certificate needs both --tls-cert and --tls-key');
  return {
    ca: o.tlsCa ? read(o.tlsCa, 'CA file') : null,
    key: o.tlsKey ? read(o.tlsKey, 'client key') : null,
    cert: o.tlsCert ? read(o.tlsCert, 'client certificate') : null,
  };
}
