/**
 * Property-based tests (fast-check): random, malformed and oversized requests
 * to every RPC, and random message sequences down the agent stream. The
 * server must always answer with a gRPC status, never crash, and never leave
 * a task inconsistent.
 */
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  status,
  type Client,
  type ClientDuplexStream,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { expect } from 'chai';
import fc from 'fast-check';
import { AgentServiceService, ConnectRequest } from '../../gen/taskgate/v1/agent.js';
import { EventServiceService } from '../../gen/taskgate/v1/event.js';
import { Target, TargetServiceService } from '../../gen/taskgate/v1/target.js';
import { TaskServiceService } from '../../gen/taskgate/v1/task.js';
import { User, UserServiceService } from '../../gen/taskgate/v1/user.js';
import { statusFromWire } from '../../server/convert.js';
import { untilOutput } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { replayable } from '../helpers/properties.js';
import { STORE_KINDS } from '../helpers/stores.js';

type Method = {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(value: never): Buffer;
  requestDeserialize(value: Buffer): Record<string, unknown>;
};

const SERVICES = [TaskServiceService, TargetServiceService, AgentServiceService, UserServiceService, EventServiceService] as unknown as Record<
  string,
  Method
>[];
/** Every unary and server-streaming method (Connect is fuzzed on its own below). */
const METHODS = SERVICES.flatMap((s) => Object.values(s)).filter((m) => !m.requestStream);

/**
 * Codes a correct server may answer malformed input with. INTERNAL and
 * UNKNOWN are bugs; so is DEADLINE_EXCEEDED, but for the streams documented
 * to stay open (see {@link mayStayOpen}): every other call must answer, and
 * a handler that hangs fails the property instead of passing as "deadline".
 */
const ACCEPTABLE = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.RESOURCE_EXHAUSTED,
  status.OUT_OF_RANGE,
]);

/**
 * How long a call may take before it counts as hung, in ms. A healthy
 * handler answers in milliseconds; this leaves room for a loaded machine.
 */
const CALL_DEADLINE_MS = 5000;

/** Ids of real tasks that the generated requests name now and then. */
interface KnownTasks {
  /** A task that has ended. */
  finished: string;
  /** A task that runs until the harness stops it. */
  live: string;
}

/**
 * Whether a call may still be open at its deadline: only the documented
 * streams (proto/taskgate/v1/task.proto), and only while what they follow
 * has not ended. WatchTask "sends the task now", so it must have sent it;
 * GetTaskLogs with follow streams until the task ends, so only for the task
 * that never ends; WatchTasks follows a list, which never ends, once it has
 * sent `synced`. Anything else at its deadline is a hung handler.
 */
function mayStayOpen(path: string, request: Record<string, unknown> | null, messages: number, known: KnownTasks): boolean {
  // WatchTasks never ends by itself, once it has sent its first page and `synced` (at least that message).
  if (path.endsWith('/WatchTasks')) return request !== null && messages > 0;
  if (!request || request.id !== known.live) return false;
  if (path.endsWith('/WatchTask')) return messages > 0;
  if (path.endsWith('/GetTaskLogs')) return request.follow === true;
  return false;
}

/** A generated request: a message shaped like the method's, or raw bytes. */
type Request = { path: string; value: Record<string, unknown> } | { path: string; bytes: Uint8Array };

/**
 * Random values shaped like a default message's fields (strings, numbers,
 * lists, nested messages); an `id` is now and then one of `ids`.
 */
function shaped(template: Record<string, unknown>, ids: readonly string[], depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const nested: Record<string, Record<string, unknown>> = { target: Target.create() as never, user: User.create() as never };
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  const text = fc.oneof(
    fc.string(),
    fc.fullUnicodeString({ maxLength: 40 }),
    fc.constantFrom('', '*', '../../etc/passwd', 'a'.repeat(70), '\u0000', 'x'.repeat(2 * 1024 * 1024)),
  );
  for (const [key, value] of Object.entries(template)) {
    if (key === 'id' && ids.length > 0) fields[key] = fc.oneof({ weight: 3, arbitrary: text }, { weight: 1, arbitrary: fc.constantFrom(...ids) });
    else if (typeof value === 'string') fields[key] = text;
    else if (typeof value === 'number') fields[key] = fc.oneof(fc.integer(), fc.constantFrom(0, -1, 2 ** 31 - 1, -(2 ** 31), 99));
    else if (typeof value === 'boolean') fields[key] = fc.boolean();
    else if (Array.isArray(value)) fields[key] = key === 'statuses' ? fc.array(fc.integer({ min: -2, max: 12 }), { maxLength: 5 }) : fc.array(text, { maxLength: 5 });
    else if (value instanceof Uint8Array || Buffer.isBuffer(value)) fields[key] = fc.uint8Array({ maxLength: 64 });
    else if (nested[key] && depth < 1) {
      const inner = nested[key];
      fields[key] = fc.option(shaped(inner, [], depth + 1).map((v) => ({ ...inner, ...v })), { nil: undefined });
    } else if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
      // A map field (e.g. secret_mapping).
      fields[key] = fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), { maxKeys: 3 });
    }
    else if (key === 'updateMask') fields[key] = fc.option(fc.array(text, { maxLength: 3 }), { nil: undefined });
    else if (key === 'since' || key === 'until') fields[key] = fc.option(fc.date(), { nil: undefined });
  }
  return fc.record(fields);
}

/** Requests to one method: mostly well-formed messages with wild values, sometimes raw bytes. */
function requestsTo(method: Method, ids: readonly string[]): fc.Arbitrary<Request> {
  const template = method.requestDeserialize(Buffer.alloc(0));
  return fc.oneof(
    { weight: 4, arbitrary: shaped(template, ids).map((value): Request => ({ path: method.path, value: { ...template, ...value } })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((bytes): Request => ({ path: method.path, bytes })) },
  );
}

/** How a call ended. */
interface Outcome {
  code: status;
  details: string;
  /** Messages a stream sent before it ended. */
  messages: number;
}

/** Calls `method` with raw request bytes; resolves to the status it ended with (DEADLINE_EXCEEDED after CALL_DEADLINE_MS). */
function callRaw(client: Client, method: Method, body: Buffer, metadata: Metadata): Promise<Outcome> {
  const deadline = new Date(Date.now() + CALL_DEADLINE_MS);
  return new Promise((resolve) => {
    let messages = 0;
    const done = (err: ServiceError | null): void => resolve({ code: err ? err.code : status.OK, details: err?.details ?? '', messages });
    const raw = client as unknown as Record<string, (...args: unknown[]) => { on(e: string, f: (...a: unknown[]) => void): void }>;
    const name = method.path;
    if (method.responseStream) {
      const call = raw[name]!(body, metadata, { deadline });
      call.on('data', () => (messages += 1));
      call.on('error', (err) => done(err as ServiceError));
      call.on('end', () => done(null));
    } else {
      raw[name]!(body, metadata, { deadline }, (err: ServiceError | null) => done(err));
    }
  });
}

/** A client whose methods send and receive raw bytes. */
function rawClient(address: string): Client {
  const def: Record<string, unknown> = {};
  for (const m of METHODS) {
    def[m.path] = {
      path: m.path,
      requestStream: false,
      responseStream: m.responseStream,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    };
  }
  const Ctor = makeGenericClientConstructor(def as ServiceDefinition, 'Raw');
  return new Ctor(address, credentials.createInsecure(), { 'grpc.max_send_message_length': 8 * 1024 * 1024 });
}

/** Every task's history agrees with its status: a chain of moves ending where the task is. */
async function checkTasks(h: Harness): Promise<void> {
  const { tasks } = await h.api.call(h.api.tasks, h.api.tasks.listTasks, { statuses: [], target: '', pageSize: 500, pageToken: '', awaitingMyReview: false, createdByMe: false });
  for (const t of tasks) {
    expect(statusFromWire(t.status), t.id).to.not.equal(undefined);
    expect(t.events.at(-1)?.to, `${t.id} ends where its events say`).to.equal(t.status);
    for (let i = 1; i < t.events.length; i++) expect(t.events[i]!.from, `${t.id} event ${i}`).to.equal(t.events[i - 1]!.to);
  }
}

for (const kind of STORE_KINDS) {
  describe(`bad input, property-based: ${kind.name}`, function () {
    this.timeout(300_000);
    let h: Harness;
    let known: KnownTasks;

    before(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location);
      await h.createTarget('t1', 'a1');
      await h.startAgent('a1');
      const seeded = await h.createTask('t1', 'echo seeded');
      await h.finished(seeded.id);
      // A task that runs until the harness stops its agent: what follow streams may wait on.
      await h.createTarget('t2', 'a2');
      await h.startAgent('a2');
      const live = await h.createTask('t2', 'echo live; exec sleep 600');
      await untilOutput(h.api, live.id, 'live');
      known = { finished: seeded.id, live: live.id };
    });

    after(async () => {
      await h?.close();
    });

    it('answers random, malformed and oversized requests to every RPC with a status within its deadline, and keeps serving', async () => {
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${h.adminToken}`);
      const byPath = new Map(METHODS.map((m) => [m.path, m]));
      const ids = [known.finished, known.live];
      const seen = new Map<string, Set<string>>();
      await fc.assert(
        fc.asyncProperty(fc.oneof(...METHODS.map((m) => requestsTo(m, ids))), async (request) => {
          const method = byPath.get(request.path)!;
          const body = 'value' in request ? method.requestSerialize(request.value as never) : Buffer.from(request.bytes);
          let decoded: Record<string, unknown> | null = null;
          try {
            decoded = method.requestDeserialize(body);
          } catch {
            // Undecodable: the server must refuse it.
          }
          // A connection of its own: a case that wedges one must not fail the cases after it (nor their shrinking).
          const client = rawClient(h.address);
          const { code, details, messages } = await callRaw(client, method, body, metadata).finally(() => client.close());
          (seen.get(method.path) ?? seen.set(method.path, new Set()).get(method.path)!).add(status[code]);
          if (code === status.DEADLINE_EXCEEDED) {
            expect(mayStayOpen(method.path, decoded, messages, known), `${method.path} hung: no status within ${CALL_DEADLINE_MS} ms (${messages} messages)`).to.equal(true);
            return;
          }
          // Undecodable bytes are refused by grpc-js itself; anything else must be one of ours.
          const undecodable = decoded === null && code === status.INTERNAL && /deserializ|parse/i.test(details);
          expect(ACCEPTABLE.has(code) || undecodable, `${method.path} answered ${status[code]}: ${details.slice(0, 300)}`).to.equal(true);
        }),
        replayable(300),
      );
      // (A replay of one case calls one method.)
      if (process.env.FC_PATH === undefined) expect(METHODS.map((m) => m.path).filter((p) => !seen.has(p)), 'methods never called').to.deep.equal([]);
      // Still serving, and no task was left inconsistent.
      const task = await h.createTask('t1', 'echo still here');
      expect((await h.finished(task.id)).output.toString()).to.equal('still here\r\n');
      await checkTasks(h);
    });

    it('answers megabyte-long names with a status whose message stays short', async () => {
      const huge = 'x'.repeat(2 * 1024 * 1024);
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['CreateTask', () => h.api.call(h.api.tasks, h.api.tasks.createTask, { target: huge, script: 'true', message: '', type: '', timeoutSeconds: 0 })],
        ['GetTarget', () => h.api.call(h.api.targets, h.api.targets.getTarget, { name: huge })],
        ['CreateTarget', () => h.api.call(h.api.targets, h.api.targets.createTarget, { target: Target.fromPartial({ name: huge, agent: 'a1', type: 'bash' }) })],
      ];
      for (const [name, call] of calls) {
        const err = await call().then(() => null, (e: ServiceError) => e);
        expect(err, name).to.not.equal(null);
        expect(err!.code, `${name}: ${err!.details.slice(0, 200)}`).to.be.oneOf([status.NOT_FOUND, status.INVALID_ARGUMENT]);
        expect(err!.details, name).to.contain(`"${'x'.repeat(60)}…" (${huge.length} characters)`);
        expect(err!.details.length, name).to.be.below(1024);
      }
    });

    it('survives random message sequences on the agent stream and keeps tasks consistent', async () => {
      const token = await h.agentToken('fz');
      await h.createTarget('fz-target', 'fz');
      const victim = await h.createTask('fz-target', 'echo victim');
      const ids = fc.constantFrom(victim.id, 'nope', '', '01ZZZZZZZZZZZZZZZZZZZZZZZZ');
      const message: fc.Arbitrary<ConnectRequest> = fc.oneof(
        fc.record({ name: fc.constantFrom('fz', 'other', ''), version: fc.string(), bootId: fc.constantFrom('b1', 'b2', ''), heldTaskIds: fc.array(ids, { maxLength: 3 }) }).map((value) =>
          ConnectRequest.fromPartial({ message: { $case: 'hello', value } }),
        ),
        fc.record({ taskId: ids, seq: fc.integer({ min: -2, max: 4 }), offset: fc.integer({ min: -5, max: 100 }), data: fc.uint8Array({ maxLength: 300_000 }) }).map((value) =>
          ConnectRequest.fromPartial({ message: { $case: 'output', value: { ...value, data: Buffer.from(value.data) } } }),
        ),
        fc.record({
          taskId: ids,
          exitCode: fc.option(fc.integer(), { nil: undefined }),
          signal: fc.constantFrom('', 'SIGKILL'),
          error: fc.constantFrom('', 'boom'),
          chunks: fc.integer({ min: -1, max: 5 }),
          totalBytes: fc.integer({ min: -1, max: 500 }),
          timedOut: fc.boolean(),
          droppedBytes: fc.integer({ min: -1, max: 10 }),
        }).map((value) => ConnectRequest.fromPartial({ message: { $case: 'exit', value } })),
        fc.record({ taskId: ids, pid: fc.integer() }).map((value) => ConnectRequest.fromPartial({ message: { $case: 'started', value } })),
        fc.constant(ConnectRequest.fromPartial({ message: { $case: 'heartbeat', value: {} } })),
        fc.constant(ConnectRequest.fromPartial({ message: { $case: 'draining', value: {} } })),
        fc.constant(ConnectRequest.fromPartial({})),
      );
      const Client = makeGenericClientConstructor(AgentServiceService as unknown as ServiceDefinition, 'Agent');
      await fc.assert(
        fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 12 }), async (messages) => {
          const client = new Client(h.address, credentials.createInsecure(), { 'grpc.max_send_message_length': 8 * 1024 * 1024 });
          const metadata = new Metadata();
          metadata.set('authorization', `Bearer ${token}`);
          try {
            const code = await new Promise<status>((resolve) => {
              const call = (client as unknown as { connect(m: Metadata, o: object): ClientDuplexStream<ConnectRequest, unknown> }).connect(metadata, {
                deadline: new Date(Date.now() + CALL_DEADLINE_MS),
              });
              call.on('data', () => undefined);
              call.on('error', (err: ServiceError) => resolve(err.code));
              call.on('end', () => resolve(status.OK));
              for (const m of messages) call.write(m);
              call.end();
            });
            // The agent half-closed its side: the server must end the stream with a status, not leave it hanging.
            expect(code, status[code]).to.not.be.oneOf([status.INTERNAL, status.UNKNOWN, status.DEADLINE_EXCEEDED]);
          } finally {
            client.close();
          }
        }),
        replayable(60),
      );
      // Whatever the sequences did to the victim, its history is a chain of allowed moves.
      await checkTasks(h);
      const task = await h.createTask('t1', 'echo after the storm');
      expect((await h.finished(task.id)).output.toString()).to.equal('after the storm\r\n');
    });
  });
}
