/** Encryption at rest of stored secrets (AES-256-GCM). */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { FailedPreconditionError } from '../../shared/errors.js';
import { SecretBox } from '../../server/secret-box.js';

describe('secret box', () => {
  it('opens what it sealed, and nothing else', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal('db', 'PG_PASS', 'hunter2');
    expect(sealed).to.match(/^v1:/).and.not.contain('hunter2');
    expect(box.seal('db', 'PG_PASS', 'hunter2')).to.not.equal(sealed); // a fresh IV each time
    expect(box.open('db', 'PG_PASS', sealed)).to.equal('hunter2');
    // Another key, or the value moved to another target or key, is refused.
    expect(() => new SecretBox(randomBytes(32)).open('db', 'PG_PASS', sealed)).to.throw(FailedPreconditionError, /secrets key is not the one/);
    expect(() => box.open('other', 'PG_PASS', sealed)).to.throw(FailedPreconditionError);
    expect(() => box.open('db', 'OTHER', sealed)).to.throw(FailedPreconditionError);
  });

  it('reads keys as hex or base64 and refuses other lengths', () => {
    const key = randomBytes(32);
    expect(SecretBox.parseKey(key.toString('hex')).equals(key)).to.equal(true);
    expect(SecretBox.parseKey(`${key.toString('base64')}\n`).equals(key)).to.equal(true);
    expect(() => SecretBox.parseKey('abcd')).to.throw(/32 bytes/);
  });
});
