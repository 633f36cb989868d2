/**
 * Certificates for TLS tests, made by the openssl command in a temporary
 * directory (no network): a CA, a server certificate for 127.0.0.1 and
 * localhost, and client certificates naming agents.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM file paths of one certificate and its key. */
export interface Pem {
  cert: string;
  key: string;
}

/** A throwaway public key infrastructure. */
export class Pki {
  readonly dir = mkdtempSync(join(tmpdir(), 'taskgate-pki-'));
  #n = 0;

  #openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: 'pipe' });
  }

  #key(name: string): string {
    const key = join(this.dir, `${name}.key`);
    this.#openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', key]);
    return key;
  }

  /** A self-signed CA. */
  ca(name: string): Pem {
    const key = this.#key(name);
    const cert = join(this.dir, `${name}.crt`);
    this.#openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    return { cert, key };
  }

  /** A certificate signed by `ca` for `cn`, with the given subjectAltName and extended key usage. */
  issue(ca: Pem, cn: string, altNames: string, usage: 'serverAuth' | 'clientAuth'): Pem {
    const name = `${cn.replace(/[^\w.-]/g, '_')}-${this.#n++}`;
    const key = this.#key(name);
    const csr = join(this.dir, `${name}.csr`);
    const ext = join(this.dir, `${name}.ext`);
    const cert = join(this.dir, `${name}.crt`);
    this.#openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
    writeFileSync(ext, `subjectAltName=${altNames}\nextendedKeyUsage=${usage}\n`);
    this.#openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
    return { cert, key };
  }

  read(path: string): Buffer {
    return readFileSync(path);
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
