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

  it('caps the delays after a lost connection at 5 s for its first minute of delays, then grows from there', () => {
    const b = new Backoff({ jitter: 0, random: () => 0.5 });
    // Far into a long outage (would be 120 s) before the connection that was lost.
    for (let i = 0; i < 20; i++) b.next();
    const delays = [b.afterLoss()];
    while (delays.reduce((a, d) => a + d, 0) < 60_000) delays.push(b.next());
    expect(delays.slice(0, 6)).to.deep.equal([500, 1000, 1600, 2560, 4096, 5000]);
    expect(Math.max(...delays)).to.equal(5000);
    // 500 + 1000 + 1600 + 2560 + 4096 = 9756, then 5000 × 11 to pass 60 s; then 8 s, 12.8 s, ... up to 120 s.
    expect(delays).to.have.length(16);
    expect([b.next(), b.next(), b.next()]).to.deep.equal([8000, 12800, 20480]);
    for (let i = 0; i < 10; i++) b.next();
    expect(b.next()).to.equal(120_000);
    // Jittered as any delay is, so capped agents do not retry in step either.
    const spread = Array.from({ length: 1000 }, () => {
      const j = new Backoff({ random: Math.random });
      j.afterLoss();
      for (let i = 0; i < 5; i++) j.next();
      return j.next();
    });
    expect(Math.min(...spread)).to.be.within(4000, 4300);
    expect(Math.max(...spread)).to.be.within(5700, 6000);
  });

  it('keeps the plain sequence when no connection was lost (webhook retries, first connections)', () => {
    const b = new Backoff({ jitter: 0 });
    const delays = Array.from({ length: 12 }, () => b.next());
    expect(delays.slice(0, 3)).to.deep.equal([1000, 1600, 2560]);
    expect(delays.at(-1)).to.be.above(60_000);
  });

  it('starts over after reset', () => {
    const b = new Backoff({ initialMs: 100, jitter: 0 });
    b.next();
    b.next();
    b.reset();
    expect(b.next()).to.equal(100);
  });
});
