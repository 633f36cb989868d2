/**
 * The standard gRPC services every server should offer, from the libraries
 * made for them: grpc.health.v1 (grpc-health-check) and server reflection
 * (@grpc/reflection), so grpcurl, grpc-health-probe, load balancers and
 * Kubernetes probes work with no proto files at hand (docs/operations.md).
 */
import type { Server } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import type { Logger } from '../shared/logger.js';
import type { StoreLifecycle } from './store/store.js';

/** Fully qualified names of Taskgate's own services. */
export const TASKGATE_SERVICES = [
  'taskgate.v1.TaskService',
  'taskgate.v1.TargetService',
  'taskgate.v1.AgentService',
  'taskgate.v1.UserService',
  'taskgate.v1.EventService',
] as const;


/**
 * The descriptors reflection serves, as `buf build` wrote them (`npm run
 * gen`): proto/ and its imports, and grpc-health-check's own health.proto
 * (the one its implementation serves).
 */
const DESCRIPTOR_SETS = ['descriptors.binpb', 'health.binpb'].map((f) => join(import.meta.dirname, '..', '..', 'gen', f));

/**
 * Adds reflection over every Taskgate service and grpc.health.v1. Every
 * descriptor comes from `buf build`, none from proto-loader: protobufjs
 * names a map field's entry type `Statuses` instead of `StatusesEntry` and
 * its synthesized per-package files lose imports, so grpcurl refused
 * grpc.health.v1 ("incorrect implicit map entry name") and could not resolve
 * google.protobuf.Timestamp (grpc/grpc-node#2958, fullstorydev/grpcurl#459).
 * @grpc/reflection only reads `fileDescriptorProtos` from the definition it
 * is given, and serves each file once by name.
 */
export function addReflection(server: Server): void {
  const { FileDescriptorSet, FileDescriptorProto } = descriptor;
  const files = DESCRIPTOR_SETS.flatMap((path) => {
    const set = FileDescriptorSet.decode(readFileSync(path)) as unknown as { file: object[] };
    return set.file.map((f) => Buffer.from(FileDescriptorProto.encode(f).finish()));
  });
  const definition = { reflected: { fileDescriptorProtos: files } } as unknown as PackageDefinition;
  new ReflectionService(definition).addToServer(server);
}

/**
 * grpc.health.v1: the server ("") and each service are SERVING while the
 * store answers and the server is not draining, NOT_SERVING otherwise. The
 * store is pinged every `pingMs`.
 */
export class Health {
  readonly #impl: HealthImplementation;
  readonly #store: StoreLifecycle;
  readonly #logger: Logger;
  readonly #pingMs: number;
  #timer: NodeJS.Timeout | undefined;
  #storeUp = true;
  #draining = false;
  /** A ping is out: the next tick does not start another. */
  #checking = false;

  constructor(server: Server, store: StoreLifecycle, logger: Logger, pingMs = 2000) {
    this.#impl = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(TASKGATE_SERVICES.map((s) => [s, 'SERVING'])) });
    this.#impl.addToServer(server);
    this.#store = store;
    this.#logger = logger;
    this.#pingMs = pingMs;
  }

  start(): void {
    this.#timer = setInterval(() => void this.check(), this.#pingMs);
    this.#timer.unref();
  }

  /**
   * Pings the store once and updates the status. A ping that has not
   * answered within the ping interval counts as down: the MongoDB driver
   * would wait out its server selection timeout (10 s) before failing, and
   * a load balancer should stop sending work well before that.
   */
  async check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    let up = true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the store did not answer a ping within ${this.#pingMs} ms`)), this.#pingMs);
    });
    try {
      await Promise.race([this.#store.ping(), late]);
    } catch (err) {
      up = false;
      if (this.#storeUp) this.#logger.error({ err: (err as Error).message }, 'store unreachable: health is NOT_SERVING');
    } finally {
      clearTimeout(timer);
      this.#checking = false;
    }
    if (up && !this.#storeUp) this.#logger.info('store reachable again: health is SERVING');
    this.#storeUp = up;
    this.#publish();
  }

  /** From now on NOT_SERVING: the server is about to stop. */
  drain(): void {
    this.#draining = true;
    this.#publish();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #publish(): void {
    const status: ServingStatus = this.#storeUp && !this.#draining ? 'SERVING' : 'NOT_SERVING';
    for (const service of ['', ...TASKGATE_SERVICES]) this.#impl.setStatus(service, status);
  }
}
