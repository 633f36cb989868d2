import { expect } from 'chai';
import { checkEmail, checkPlainText, checkTtl } from '../../server/validate.js';
import { InvalidArgumentError } from '../../shared/errors.js';

describe('input checks', () => {
  it('refuse emails and names with control or text-direction characters, naming the character', () => {
    for (const [value, code] of [
      ['x@y\u202e', 'U+202E'],
      ['admin\u200b@example.com', 'U+200B'],
      ['a@b\u0000', 'U+0000'],
      ['a@b\u2066c', 'U+2066'],
      ['\ufeffa@b', 'U+FEFF'],
    ] as const) {
      expect(() => checkEmail('user.email', value), value).to.throw(InvalidArgumentError, `user.email contains the control or text-direction character ${code}; use plain text`);
    }
    expect(() => checkPlainText('user.name', 'Ada\u0085')).to.throw(InvalidArgumentError, 'U+0085');
  });

  it('accept ordinary names in any script', () => {
    expect(checkEmail('user.email', 'zoë@example.com')).to.equal('zoë@example.com');
    expect(checkPlainText('user.name', 'Zoë Ōkubo-Смирнова 李')).to.equal('Zoë Ōkubo-Смирнова 李');
  });

  it('turn a ttl into an expiry, refusing nonsense', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    expect(checkTtl('ttl', undefined, now)).to.equal(null);
    expect(checkTtl('ttl', { seconds: 0, nanos: 0 }, now)).to.equal(null);
    expect(checkTtl('ttl', { seconds: 3600, nanos: 0 }, now)?.toISOString()).to.equal('2026-01-01T01:00:00.000Z');
    expect(() => checkTtl('ttl', { seconds: -5, nanos: 0 }, now)).to.throw(InvalidArgumentError, 'ttl must be between 1 second and 10 years');
    expect(() => checkTtl('ttl', { seconds: 400 * 365 * 86400, nanos: 0 }, now)).to.throw(InvalidArgumentError);
  });
});
