import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { grpcStatus } from '../../server/rpc/grpc.js';
import { boundedMessage as boundedDetails, Code, MAX_MESSAGE as MAX_DETAILS, toRpcError } from '../../server/rpc/status.js';
import { CancelledError, DeadlineExceededError, NotFoundError, ResourceExhaustedError } from '../../shared/errors.js';

describe('status messages', () => {
  it('keep short messages as they are', () => {
    expect(boundedDetails('target "db" not found')).to.equal('target "db" not found');
  });

  it('cut a megabyte value quoted in a message, keeping the rule after it', () => {
    const value = 'x'.repeat(2 * 1024 * 1024);
    const details = boundedDetails(`target "${value}" is invalid: use 1-63 lower-case letters`);
    expect(details).to.equal(`target "${'x'.repeat(60)}…" (${value.length} characters) is invalid: use 1-63 lower-case letters`);
  });

  it('cut any message to the limit when quoting is not the cause', () => {
    const details = boundedDetails(`a${' long'.repeat(1000)}`);
    expect(details).to.have.length(MAX_DETAILS);
    expect(details.endsWith('…')).to.equal(true);
  });

  it('are bounded at the gRPC boundary', () => {
    const err = grpcStatus(new NotFoundError(`target "${'y'.repeat(100_000)}" not found`), pino({ enabled: false }), 'test');
    expect(err.code).to.equal(status.NOT_FOUND);
    expect(err.details!.length).to.be.below(MAX_DETAILS);
    expect(err.details).to.match(/^target "y{60}…" \(100000 characters\) not found$/);
  });

  it('map every domain error to its code, and anything else to INTERNAL with the bug reported', () => {
    const bugs: unknown[] = [];
    expect(toRpcError(new CancelledError('gone'), (b) => bugs.push(b)).code).to.equal(Code.CANCELLED);
    expect(toRpcError(new DeadlineExceededError('late'), (b) => bugs.push(b)).code).to.equal(Code.DEADLINE_EXCEEDED);
    expect(bugs).to.deep.equal([]);
    const internal = toRpcError(new TypeError('x is undefined'), (b) => bugs.push(b));
    expect(internal.code).to.equal(Code.INTERNAL);
    expect(internal.message).to.equal('internal error; see the server log');
    expect(bugs).to.have.length(1);
  });

  it('carry a retry delay to gRPC clients as grpc-retry-pushback-ms', () => {
    const err = grpcStatus(new ResourceExhaustedError('slow down', { retryDelayMs: 1500 }), pino({ enabled: false }), 'test');
    expect(err.code).to.equal(status.RESOURCE_EXHAUSTED);
    expect(err.metadata!.get('grpc-retry-pushback-ms')).to.deep.equal(['1500']);
  });

  it('number codes as gRPC does', () => {
    for (const [name, code] of Object.entries(Code)) expect(status[name as keyof typeof status], name).to.equal(code);
  });
});
