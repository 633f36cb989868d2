/**
 * Node warns (DEP0123) whenever a TLS connection is made to an IP address,
 * because grpc-js passes the IP as the SNI server name, which RFC 6066 does
 * not allow and Node then ignores. Nothing is wrong with such a connection
 * (the certificate is still checked against the IP), so the programs drop
 * that one warning instead of printing it on every command; every other
 * warning is printed as before.
 */
export function dropIpServerNameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const options = rest[0];
    const code = typeof options === 'object' && options !== null ? (options as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
