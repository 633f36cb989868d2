import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { pino } from 'pino';
import { boundedDetails, MAX_DETAILS, toServiceError } from '../../server/grpc-status.js';
import { NotFoundError } from '../../shared/errors.js';

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
    const err = toServiceError(new NotFoundError(`target "${'y'.repeat(100_000)}" not found`), pino({ enabled: false }), 'test');
    expect(err.code).to.equal(status.NOT_FOUND);
    expect(err.details!.length).to.be.below(MAX_DETAILS);
    expect(err.details).to.match(/^target "y{60}…" \(100000 characters\) not found$/);
  });
});
