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

  it('spreads the first attempt after a lost connection over [0, initialMs] (full jitter), then goes on from initialMs', () => {
    // The fleet of a restarted server, each agent with its own random source.
    const delays = Array.from({ length: 10_000 }, () => new Backoff({ initialMs: 1000 }).afterLoss());
    expect(Math.min(...delays)).to.be.at.least(0);
    expect(Math.max(...delays)).to.be.at.most(1000);
    // Uniform: about a tenth in each tenth of the second (binomial, 10,000 draws: σ ≈ 30 per bin).
    const bins = Array.from({ length: 10 }, (_, i) => delays.filter((d) => d >= i * 100 && d < (i + 1) * 100).length);
    for (const n of bins) expect(n).to.be.within(850, 1150);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).to.be.within(480, 520);
    // ±20 % of one second (what every agent used to wait) keeps them all within 800-1200 ms.
    const old = Array.from({ length: 10_000 }, () => new Backoff({ initialMs: 1000 }).next());
    expect(Math.max(...old) - Math.min(...old)).to.be.at.most(400);

    const b = new Backoff({ initialMs: 1000, multiplier: 2, jitter: 0, random: () => 0.25 });
    b.next();
    b.next();
    expect(b.afterLoss()).to.equal(250);
    expect([b.next(), b.next()]).to.deep.equal([1000, 2000]);
  });

  it('starts over after reset', () => {
    const b = new Backoff({ initialMs: 100, jitter: 0 });
    b.next();
    b.next();
    b.reset();
    expect(b.next()).to.equal(100);
  });
});
