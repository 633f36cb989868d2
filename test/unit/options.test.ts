import { expect } from 'chai';
import { AGENT_DEFAULTS, compileAgentOptions, defaultWorkDir } from '../../agent/options.js';
import { compileServerOptions, SERVER_DEFAULTS } from '../../server/options.js';
import { BACKOFF_DEFAULTS } from '../../shared/backoff.js';
import { ConfigError } from '../../shared/config-error.js';

describe('compiled server options', () => {
  it('applies every default of the table, and derives lastSeen and heartbeat intervals from the lease', () => {
    const o = compileServerOptions({});
    expect(o).to.include(SERVER_DEFAULTS);
    expect([o.lastSeenEveryMs, o.heartbeatIntervalMs]).to.deep.equal([20_000, 10_000]);
    expect(o.webhooks).to.deep.equal({ hooks: [] });
  });

  it('refreshes lastSeen within a short lease and clamps the heartbeat to half of that, never below 50 ms', () => {
    const short = compileServerOptions({ leaseMs: 1500, heartbeatIntervalMs: 60_000 });
    expect([short.lastSeenEveryMs, short.heartbeatIntervalMs]).to.deep.equal([500, 250]);
    const long = compileServerOptions({ leaseMs: 3_600_000 });
    expect([long.lastSeenEveryMs, long.heartbeatIntervalMs]).to.deep.equal([30_000, 10_000]);
    expect(compileServerOptions({ leaseMs: 60 }).heartbeatIntervalMs).to.equal(50);
  });

  it('keeps what is given, undefined meaning the default', () => {
    const o = compileServerOptions({ listen: '127.0.0.1:0', pollMs: 200, maxTasksPerAgent: undefined });
    expect([o.listen, o.pollMs, o.maxTasksPerAgent]).to.deep.equal(['127.0.0.1:0', 200, 30]);
  });

  it('refuses mutual TLS for agents without the server certificate, and impossible numbers, in one line', () => {
    expect(() => compileServerOptions({ agentTls: { listen: '127.0.0.1:0', clientCa: Buffer.from('ca') } })).to.throw(
      ConfigError,
      'mutual TLS for agents needs the server certificate and key (--tls-cert, --tls-key)',
    );
    expect(() => compileServerOptions({ maxTasksPerAgent: 1.5 })).to.throw(ConfigError, 'maxTasksPerAgent must be a positive integer, not 1.5');
    expect(() => compileServerOptions({ leaseMs: 0 })).to.throw(ConfigError, 'leaseMs must be a positive number, not 0');
    expect(() => compileServerOptions({ drainMs: -1 })).to.throw(ConfigError, 'drainMs must be 0 or more, not -1');
  });

  it('hands the agent address the server certificate', () => {
    const tls = { cert: Buffer.from('cert'), key: Buffer.from('key') };
    const o = compileServerOptions({ tls, agentTls: { listen: '127.0.0.1:0', clientCa: Buffer.from('ca') } });
    expect(o.agentTls).to.deep.equal({ listen: '127.0.0.1:0', clientCa: Buffer.from('ca'), ...tls });
  });
});

describe('compiled agent options', () => {
  const base = { server: '127.0.0.1:1', token: 't', name: 'edge-1' };

  it('applies every default of the table, the work dir named after the agent and isolation when root', () => {
    const o = compileAgentOptions(base);
    expect(o).to.include({ workDir: defaultWorkDir('edge-1'), isolate: process.getuid?.() === 0, drainMs: AGENT_DEFAULTS.drainMs });
    expect(o.taskIds).to.deep.equal(AGENT_DEFAULTS.taskIds);
    expect([o.env, o.passEnv]).to.deep.equal([{}, []]);
  });

  it('completes a partial backoff from the shared defaults', () => {
    expect(compileAgentOptions({ ...base, backoff: { initialMs: 50 } }).backoff).to.deep.equal({ ...BACKOFF_DEFAULTS, initialMs: 50 });
  });

  it('refuses a variable name that can never reach tasks, and impossible numbers', () => {
    expect(() => compileAgentOptions({ ...base, passEnv: ['TASKGATE_TOKEN'] })).to.throw(/Taskgate's own variables are never passed to tasks/);
    expect(() => compileAgentOptions({ ...base, drainMs: -5 })).to.throw(ConfigError, 'drainMs must be 0 or more, not -5');
    expect(() => compileAgentOptions({ ...base, maxChunkBytes: 0 })).to.throw(ConfigError, 'maxChunkBytes must be a positive number, not 0');
  });
});
