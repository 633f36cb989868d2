import { expect } from 'chai';
import { Backoff } from '../../shared/backoff.js';

describe('Backoff', () => {
  it('grows by the multiplier up to the cap, without jitter', () => {
    const b = new Backoff({ initialMs: 1000, multiplier: 1.6, maxMs: 5000, jitter: 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).to.deep.equal([1000, 1600, 2560, 4096, 5000, 5000]);
  });

  it('jitters within the configured band', () => {
    const low = new Backoff({ initialMs: 1000, jitter: 0.2, random: () => 0 });
    const high = new Backoff({ initialMs: 1000, jitter: 0.2, random: () => 0.999999 });
    expect(low.next()).to.equal(800);
    expect(high.next()).to.equal(1200);
  });

  it('starts over after reset', () => {
    const b = new Backoff({ initialMs: 100, jitter: 0 });
    b.next();
    b.next();
    b.reset();
    expect(b.next()).to.equal(100);
  });
});
