import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readClientTls, usesTls } from '../../shared/tls.js';

describe('client TLS settings', () => {
  let dir: string;
  let ca: string;
  let cert: string;
  let key: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-tls-unit-'));
    ca = join(dir, 'ca.crt');
    cert = join(dir, 'agent.crt');
    key = join(dir, 'agent.key');
    writeFileSync(ca, 'ca pem');
    writeFileSync(cert, 'cert pem');
    writeFileSync(key, 'key pem');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('asks for plaintext only when no TLS setting is given', () => {
    expect(usesTls({})).to.equal(false);
    expect(readClientTls({})).to.equal(null);
    expect(usesTls({ tls: true })).to.equal(true);
    expect(usesTls({ tlsKey: key })).to.equal(true);
  });

  it('uses the system roots for --tls alone, and reads the CA, certificate and key files given', () => {
    expect(readClientTls({ tls: true })).to.deep.equal({ ca: null, key: null, cert: null });
    const pem = readClientTls({ tlsCa: ca, tlsCert: cert, tlsKey: key })!;
    expect([pem.ca?.toString(), pem.cert?.toString(), pem.key?.toString()]).to.deep.equal(['ca pem', 'cert pem', 'key pem']);
  });

  it('refuses a certificate without its key, and names a file it cannot read', () => {
    expect(() => readClientTls({ tlsCert: cert })).to.throw('a client certificate needs both --tls-cert and --tls-key');
    expect(() => readClientTls({ tlsKey: key })).to.throw('a client certificate needs both --tls-cert and --tls-key');
    expect(() => readClientTls({ tlsCa: join(dir, 'missing.crt') })).to.throw(`cannot read CA file ${join(dir, 'missing.crt')}: ENOENT`);
  });
});
