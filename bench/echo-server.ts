/**
 * The gRPC baseline: a grpc-js server with no application logic, run as its
 * own process like the Taskgate server. Unary Echo returns its request;
 * bidi Stream echoes every message. Prints "ready PORT" once listening.
 */
import { Server, ServerCredentials, type ServerDuplexStream, type ServiceDefinition, type handleUnaryCall } from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

/** Raw bytes in, raw bytes out: no protobuf, the floor under any gRPC service. */
export const ECHO_SERVICE: ServiceDefinition = {
  echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  stream: {
    path: '/bench.Echo/Stream',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

if (process.argv[1]?.endsWith('echo-server.js')) {
  const server = new Server();
  const echo: handleUnaryCall<Buffer, Buffer> = (call, callback) => callback(null, call.request);
  server.addService(ECHO_SERVICE, {
    echo,
    stream: (call: ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(m));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = Number(process.argv[2] ?? 0);
  server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
    if (err) throw err;
    console.log(`ready ${bound}`);
  });
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}
