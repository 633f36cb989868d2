/**
 * Encryption at rest of stored secrets: AES-256-GCM under the server's
 * 32-byte key (`--secrets-key-file`), a random 96-bit IV per value, the
 * target and key as additional authenticated data (a value cannot be moved
 * to another target or key). Sealed form: "v1:" + base64(iv | tag | ciphertext).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { FailedPreconditionError } from '../shared/errors.js';

/** Seals and opens secret values with the server's key. */
export class SecretBox {
  readonly #key: Buffer;

  /** `key`: 32 bytes. */
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error(`the secrets key must be 32 bytes, not ${key.length}`);
    this.#key = key;
  }

  /** Reads a key given as 64 hex characters or base64 of 32 bytes. */
  static parseKey(text: string): Buffer {
    const t = text.trim();
    const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
    if (key.length !== 32) throw new Error('the secrets key must be 32 bytes: 64 hex characters or base64 (openssl rand -hex 32)');
    return key;
  }

  seal(target: string, name: string, value: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(`${target}\0${name}`));
    const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return `v1:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`;
  }

  /** Throws FailedPreconditionError when the value was sealed with another key (or altered). */
  open(target: string, name: string, sealed: string): string {
    const raw = Buffer.from(sealed.replace(/^v1:/, ''), 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(`${target}\0${name}`));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new FailedPreconditionError(`stored secret ${name} of target "${target}" cannot be decrypted: the server's secrets key is not the one it was stored with`);
    }
  }
}
