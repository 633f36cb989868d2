/**
 * What Taskgate's RPC layer (server/rpc/) costs per unary call: the grpc-js
 * adapter's call context and the whole middleware chain (metrics, error
 * mapping, authentication, access, limits) around a method that does nothing, in
 * this process, against the same method called bare with its caller looked
 * up. grpc-js itself is left out: its cost is the same either way, and the
 * API suite's raw echo measures it.
 */
import { Metadata, type Server, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { TaskServiceService, type GetTaskResponse } from '../gen/taskgate/v1/task.js';
import type { Authenticator, Principal } from '../server/auth.js';
import { Metrics } from '../server/metrics.js';
import { GrpcTransport } from '../server/rpc/grpc.js';
import { AuthFailureLimits, RateLimits } from '../server/rate-limits.js';
import { authenticate, limitCallers, mapErrors, recordMetrics, requireAccess } from '../server/rpc/middleware.js';
import type { Store } from '../server/store/store.js';
import { silentLogger } from '../shared/logger.js';

/** CPU microseconds per call through the layer and bare, over `n` sequential calls each. */
export async function rpcLayerCost(n: number): Promise<{ layerUs: number; bareUs: number }> {
  const principal: Principal = { kind: 'user', email: 'bench@example.com', groups: ['dev'], tokenId: 't1' };
  // The real Authenticator's cache hit is the same work in both: hashing the token.
  const auth = { authenticate: async (header: string | undefined) => (header ? principal : principal) } as unknown as Authenticator;
  const response: GetTaskResponse = { task: undefined };
  const getTask = async (): Promise<GetTaskResponse> => response;
  let implementation: UntypedServiceImplementation = {};
  const server = { addService: (_definition: unknown, impl: UntypedServiceImplementation) => (implementation = impl) } as unknown as Server;
  const logger = silentLogger();
  const metrics = new Metrics({ store: () => ({}) as Store, connectedAgents: () => 0 });
  const transport = new GrpcTransport(server, {
    // The limiter runs its bucket arithmetic on every call; its rate is set too high to refuse any.
    middleware: [recordMetrics(metrics), mapErrors(logger), authenticate(auth, new AuthFailureLimits(10)), requireAccess(), limitCallers(new RateLimits({ callsPerSecond: 1e12, burst: 1e12, streams: 0 }))],
    shutdown: new AbortController().signal,
    logger,
  });
  transport.add({ definition: { getTask: TaskServiceService.getTask }, access: { getTask: 'user' }, methods: { getTask } });
  const handler = implementation.getTask as (call: unknown, callback: (err: unknown, res?: unknown) => void) => void;
  const metadata = new Metadata();
  metadata.set('authorization', 'Bearer tg_user_bench');
  const call = (): object => ({ metadata, cancelled: false, request: { id: 'x' }, getDeadline: () => Infinity, getPeer: () => '127.0.0.1:5000', on: () => undefined });

  const layered = (): Promise<void> => new Promise((resolve, reject) => handler(call(), (err) => (err ? reject(err as Error) : resolve())));
  const bare = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const c = call() as { metadata: Metadata; request: unknown };
      auth
        .authenticate(c.metadata.get('authorization')[0] as string)
        .then(() => getTask())
        .then(() => resolve(), reject);
    });
  const measure = async (op: () => Promise<void>): Promise<number> => {
    for (let i = 0; i < Math.min(n, 20_000); i++) await op(); // warm up
    const start = process.cpuUsage();
    for (let i = 0; i < n; i++) await op();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / n;
  };
  // Alternate, and keep the faster of two rounds of each: the machine is shared.
  const bareUs = Math.min(await measure(bare), await measure(bare));
  const layerUs = Math.min(await measure(layered), await measure(layered));
  return { layerUs, bareUs };
}
