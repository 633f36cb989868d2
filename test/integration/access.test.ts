/**
 * The authorization table: every RPC, called by every kind of caller, gets
 * the answer docs/access.md promises. Runs against both stores and over
 * every transport; its rows are checked against the generated service
 * definitions, so a new RPC without a row fails here.
 */
import { Client, credentials, Metadata, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentServiceClient, ConnectRequest, type ConnectResponse } from '../../gen/taskgate/v1/agent.js';
import { Target } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision, type ListTasksResponse, type Task, type WatchTasksResponse } from '../../gen/taskgate/v1/task.js';
import { User } from '../../gen/taskgate/v1/user.js';
import { type Api } from '../../cli/client.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

/** The kinds of caller the table covers. */
const CALLERS = [
  'admin',
  'member',
  'nonMember',
  'reviewer',
  'otherReviewer',
  'creator',
  'agent',
  'noToken',
  'revoked',
  'inactive',
] as const;
type Caller = (typeof CALLERS)[number];

/** "OK" or a status name; ListTasks adds whether the fixture task was visible. */
type Outcome = string;

const OK = 'OK';
const PD = 'PERMISSION_DENIED';
const NF = 'NOT_FOUND';
const UA = 'UNAUTHENTICATED';

/**
 * Rows: an RPC ("Service/Method", plus a variant in parentheses when one
 * method has several rules) and the outcome per caller; callers not named
 * get `rest`. A row is data: the request to send, and for ListTasks how to
 * read the answer, so the same table runs over every transport
 * (`TRANSPORTS`). Every method of every generated service needs a row.
 */
interface Row {
  rpc: string;
  expect: Partial<Record<Caller, Outcome>> & { rest: Outcome };
  /** The request (partial: missing fields take their defaults). */
  request: (fx: Fixtures) => Promise<object> | object;
  /** What the answer says beyond OK ("sees"/"hidden"). */
  outcome?: (response: unknown, fx: Fixtures) => Promise<string>;
  /** A method only gRPC serves, with its own call (the agent stream). */
  custom?: (address: string, token: string | undefined) => Promise<void>;
  /** What every caller gets over Connect, when that differs from `expect` (the agent stream: refused). */
  overConnect?: Outcome;
}

interface Fixtures {
  /** A task created by `creator` on target `prod`, waiting for review by dba. */
  pending: () => Promise<Task>;
  /** Such a task approved by the reviewer. */
  approved: () => Promise<Task>;
  /** A fresh target name, created by the admin. */
  freshTarget: () => Promise<string>;
  /** A fresh token of the creator: its id. */
  creatorToken: () => Promise<string>;
  /** A fresh stored secret of target prod: its key. */
  freshSecret: () => Promise<string>;
  /** The last task `pending` made. */
  lastPending: () => Task;
}

async function firstMessage(stream: AsyncIterable<unknown>): Promise<unknown> {
  for await (const message of stream) return message;
  return undefined;
}

const NOT_USERS = { agent: PD, noToken: UA, revoked: UA, inactive: UA };
/** Any user may; tokens that are not a valid user's are refused. */
const ANY_USER = { ...NOT_USERS, rest: OK };
/** Only the admin group. */
const ADMIN_ONLY = { ...NOT_USERS, admin: OK, rest: PD };
/** Reading a task: who may see it; everyone else is told it does not exist. */
const SEE_TASK = { ...NOT_USERS, admin: OK, member: OK, reviewer: OK, creator: OK, rest: NF };

const ROWS: Row[] = [
  { rpc: 'TaskService/CreateTask', expect: { ...NOT_USERS, admin: OK, member: OK, creator: OK, rest: PD }, request: () => ({ target: 'prod', script: 'true' }) },
  { rpc: 'TaskService/GetTask', expect: SEE_TASK, request: async (fx) => ({ id: (await fx.pending()).id }) },
  {
    rpc: 'TaskService/ListTasks',
    expect: { ...NOT_USERS, admin: 'OK sees', member: 'OK sees', reviewer: 'OK sees', creator: 'OK sees', rest: 'OK hidden' },
    request: async (fx) => {
      await fx.pending();
      return {};
    },
    outcome: async (res, fx) => ((res as ListTasksResponse).tasks.some((t) => t.id === fx.lastPending().id) ? 'sees' : 'hidden'),
  },
  {
    rpc: 'TaskService/ReviewTask',
    expect: { ...NOT_USERS, admin: PD, member: PD, reviewer: OK, creator: PD, rest: NF },
    request: async (fx) => ({ id: (await fx.pending()).id, decision: ReviewDecision.REVIEW_DECISION_APPROVE }),
  },
  { rpc: 'TaskService/RunTask', expect: { ...NOT_USERS, admin: OK, creator: OK, member: PD, reviewer: PD, rest: NF }, request: async (fx) => ({ id: (await fx.approved()).id }) },
  { rpc: 'TaskService/KillTask', expect: { ...NOT_USERS, admin: OK, creator: OK, member: PD, reviewer: PD, rest: NF }, request: async (fx) => ({ id: (await fx.pending()).id }) },
  { rpc: 'TaskService/WatchTask', expect: SEE_TASK, request: async (fx) => ({ id: (await fx.pending()).id }) },
  {
    // The first message: the newest task the caller sees (the fixture task, when they see it), or `synced`.
    rpc: 'TaskService/WatchTasks',
    expect: { ...NOT_USERS, admin: 'OK sees', member: 'OK sees', reviewer: 'OK sees', creator: 'OK sees', rest: 'OK hidden' },
    request: async (fx) => {
      await fx.pending();
      return {};
    },
    outcome: async (res, fx) => {
      const event = (res as WatchTasksResponse).event;
      return event?.$case === 'task' && event.value.id === fx.lastPending().id ? 'sees' : 'hidden';
    },
  },
  { rpc: 'TaskService/GetTaskLogs', expect: SEE_TASK, request: async (fx) => ({ id: (await fx.pending()).id, follow: false }) },
  {
    rpc: 'TargetService/CreateTarget',
    expect: ADMIN_ONLY,
    request: () => ({ target: Target.fromPartial({ name: `t-${Math.random().toString(36).slice(2, 10)}`, agent: 'a1' }) }),
  },
  { rpc: 'TargetService/GetTarget', expect: ANY_USER, request: () => ({ name: 'prod' }) },
  { rpc: 'TargetService/ListTargets', expect: ANY_USER, request: () => ({}) },
  {
    rpc: 'TargetService/UpdateTarget',
    expect: ADMIN_ONLY,
    request: async (fx) => ({ target: Target.fromPartial({ name: await fx.freshTarget(), message: 'new' }), updateMask: ['message'] }),
  },
  { rpc: 'TargetService/DeleteTarget', expect: ADMIN_ONLY, request: async (fx) => ({ name: await fx.freshTarget() }) },
  { rpc: 'TargetService/SetSecret', expect: ADMIN_ONLY, request: () => ({ target: 'prod', key: 'K', value: 'v' }) },
  { rpc: 'TargetService/ListSecrets', expect: ADMIN_ONLY, request: () => ({ target: 'prod' }) },
  { rpc: 'TargetService/DeleteSecret', expect: ADMIN_ONLY, request: async (fx) => ({ target: 'prod', key: await fx.freshSecret() }) },
  { rpc: 'AgentService/ListAgents', expect: ANY_USER, request: () => ({}) },
  { rpc: 'AgentService/CreateAgentToken', expect: ADMIN_ONLY, request: () => ({ name: 'a9' }) },
  {
    rpc: 'AgentService/Connect',
    expect: { agent: OK, noToken: UA, revoked: UA, inactive: UA, rest: PD },
    overConnect: 'UNIMPLEMENTED',
    request: () => ({}),
    custom: async (address, token) => {
      const client = new AgentServiceClient(address, credentials.createInsecure());
      try {
        const stream: ClientDuplexStream<ConnectRequest, ConnectResponse> = client.connect(bearer(token));
        stream.write(ConnectRequest.fromPartial({ message: { $case: 'hello', value: { name: 'a1', version: 'test', bootId: 'b1' } } }));
        await firstMessage(stream);
        stream.cancel();
      } finally {
        client.close();
      }
    },
  },
  { rpc: 'UserService/CreateUser', expect: ADMIN_ONLY, request: () => ({ user: User.fromPartial({ email: `u${Math.random().toString(36).slice(2)}@x`, groups: [] }) }) },
  { rpc: 'UserService/GetUser (another user)', expect: ADMIN_ONLY, request: () => ({ email: 'other@x' }) },
  { rpc: 'UserService/ListUsers', expect: ADMIN_ONLY, request: () => ({}) },
  { rpc: 'UserService/UpdateUser', expect: ADMIN_ONLY, request: () => ({ user: User.fromPartial({ email: 'other@x', name: 'N' }), updateMask: ['name'] }) },
  { rpc: 'UserService/WhoAmI', expect: ANY_USER, request: () => ({}) },
  { rpc: 'UserService/CreateToken (own)', expect: ANY_USER, request: () => ({}) },
  { rpc: 'UserService/CreateToken (another user)', expect: ADMIN_ONLY, request: () => ({ user: 'other@x' }) },
  { rpc: 'UserService/ListTokens (own)', expect: ANY_USER, request: () => ({}) },
  { rpc: 'UserService/ListTokens (all)', expect: ADMIN_ONLY, request: () => ({ subject: '*' }) },
  { rpc: "UserService/RevokeToken (the creator's)", expect: { ...NOT_USERS, admin: OK, creator: OK, rest: NF }, request: async (fx) => ({ id: await fx.creatorToken() }) },
  { rpc: 'EventService/ListEvents', expect: ADMIN_ONLY, request: () => ({}) },
];

/** Every method of every service generated from proto/, found by reading gen/ (so a new service counts too). */
async function generatedMethods(): Promise<Map<string, GeneratedMethod>> {
  const dir = join(import.meta.dirname, '..', '..', 'gen', 'taskgate', 'v1');
  const methods = new Map<string, GeneratedMethod>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const module = (await import(join(dir, file))) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      if (typeof value !== 'object' || value === null) continue;
      for (const method of Object.values(value)) {
        if (typeof method === 'object' && method !== null && typeof (method as GeneratedMethod).path === 'string' && 'requestSerialize' in method) {
          const m = method as GeneratedMethod;
          methods.set(m.path.slice(1).replace(/^taskgate\.v1\./, ''), m);
        }
      }
    }
  }
  return methods;
}

/** A method as ts-proto generates it for grpc-js. */
interface GeneratedMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: unknown) => Buffer;
  requestDeserialize: (value: Buffer) => unknown;
  responseDeserialize: (value: Buffer) => unknown;
}

function bearer(token: string | undefined): Metadata {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

/** A way to call any method with a token: unary calls return the response, streams their first message. */
interface Transport {
  call(method: GeneratedMethod, request: object, token: string | undefined): Promise<unknown>;
  close(): void;
}

/** Where the server listens: gRPC host:port, and the HTTP listener's URL. */
interface Addresses {
  grpc: string;
  http: string;
}

/** gRPC, through a generic grpc-js client and the generated serializers. */
function grpcTransport({ grpc: address }: Addresses): Transport {
  const client = new Client(address, credentials.createInsecure());
  return {
    call(method, request, token) {
      // Missing fields take their defaults: decode nothing, then lay the request over it.
      const full = { ...(method.requestDeserialize(Buffer.alloc(0)) as object), ...request };
      if (!method.responseStream) {
        return new Promise((resolve, reject) =>
          client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, full, bearer(token), (err, res) => (err ? reject(err) : resolve(res))),
        );
      }
      const stream = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, full, bearer(token));
      return firstMessage(stream).finally(() => stream.cancel());
    },
    close: () => client.close(),
  };
}

/** An error as the Connect protocol sends it, with its code as gRPC numbers it (as the table reads errors). */
function connectFailure(body: string, httpStatus: number): Error & { code: number } {
  let parsed: { code?: string; message?: string } = {};
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    // A bare HTTP error: no Connect body.
  }
  const code = parsed.code === undefined ? undefined : (status as unknown as Record<string, number>)[parsed.code.toUpperCase()];
  if (code === undefined) throw new Error(`HTTP ${httpStatus} without a Connect error: ${body.slice(0, 200)}`);
  return Object.assign(new Error(parsed.message ?? ''), { code });
}

/**
 * Connect, spoken by hand with fetch and ts-proto's own serializers (so the
 * reference is the wire form, not the server's converter): unary calls as
 * application/proto, streams as enveloped application/connect+proto.
 */
function connectTransport({ http }: Addresses): Transport {
  const abort = new AbortController();
  return {
    async call(method, request, token) {
      const full = { ...(method.requestDeserialize(Buffer.alloc(0)) as object), ...request };
      const body = method.requestSerialize(full);
      const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
      const streaming = method.responseStream || method.requestStream;
      const res = await fetch(`${http}${method.path}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': streaming ? 'application/connect+proto' : 'application/proto' },
        body: streaming ? envelope(0, body) : body,
        signal: abort.signal,
      });
      if (!streaming || res.status !== 200) {
        const bytes = Buffer.from(await res.arrayBuffer());
        if (res.status !== 200) throw connectFailure(bytes.toString('utf8'), res.status);
        return method.responseDeserialize(bytes);
      }
      // The first envelope (a stream that follows does not end): a message, or the end-of-stream message's error.
      const reader = res.body!.getReader();
      try {
        let bytes = Buffer.alloc(0);
        for (;;) {
          if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt32BE(1)) break;
          const { done, value } = await reader.read();
          if (done) throw new Error(`${method.path}: the stream ended inside an envelope`);
          bytes = Buffer.concat([bytes, value]);
        }
        const payload = bytes.subarray(5, 5 + bytes.readUInt32BE(1));
        if ((bytes[0]! & 2) === 0) return method.responseDeserialize(payload);
        const end = JSON.parse(payload.toString('utf8')) as { error?: unknown };
        if (end.error) throw connectFailure(JSON.stringify(end.error), res.status);
        return undefined;
      } finally {
        await reader.cancel();
      }
    },
    close: () => abort.abort(),
  };
}

/** One Connect envelope: flags, big-endian length, payload. */
function envelope(flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The transports the table runs over. */
const TRANSPORTS: ReadonlyArray<{ name: 'gRPC' | 'Connect'; make: (addresses: Addresses) => Transport }> = [
  { name: 'gRPC', make: grpcTransport },
  { name: 'Connect', make: connectTransport },
];

describe('authorization table rows', () => {
  it('cover every method of every generated service, and name only real ones', async () => {
    const methods = await generatedMethods();
    const covered = new Set(ROWS.map((r) => r.rpc.replace(/ \(.*\)$/, '')));
    expect([...methods.keys()].filter((m) => !covered.has(m)), 'methods without a row').to.deep.equal([]);
    expect([...covered].filter((m) => !methods.has(m)), 'rows naming no method').to.deep.equal([]);
    expect(methods.size).to.be.greaterThan(25);
  });

  it('are each listed in docs/access.md', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'access.md'), 'utf8');
    // Named as a word in a row of the table ("| GetTask, WatchTask, GetTaskLogs |"), not anywhere in the prose.
    const rows = doc.split('\n').filter((l) => l.startsWith('|'));
    const listed = (method: string): boolean => rows.some((l) => new RegExp(`\\b${method}\\b`).test(l));
    const missing = [...new Set(ROWS.map((r) => r.rpc.replace(/ \(.*\)$/, '').split('/')[1]!))].filter((m) => !listed(m));
    expect(missing, 'methods docs/access.md does not mention').to.deep.equal([]);
  });
});

for (const kind of STORE_KINDS) {
  describe(`authorization table: ${kind.name}`, function () {
    let h: Harness;
    const clients = new Map<Caller, Api>();
    /** Each caller's token; none for noToken. */
    const tokens = new Map<Caller, string | undefined>();

    before(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location, { secretsKey: randomBytes(32), httpListen: '127.0.0.1:0' });
      await h.createTarget('prod', 'a1', 'bash', { groups: ['dev'], review: 3 /* TEAM */, reviewers: ['dba'] });
      const user = async (caller: Caller, email: string, groups: string[]): Promise<Api & { token: string }> => {
        const api = await h.user(email, groups);
        clients.set(caller, api);
        tokens.set(caller, api.token);
        return api;
      };
      clients.set('admin', h.api);
      tokens.set('admin', h.adminToken);
      await user('member', 'member@x', ['dev']);
      await user('nonMember', 'nonmember@x', ['ops']);
      await user('reviewer', 'reviewer@x', ['dba']);
      await user('otherReviewer', 'sre@x', ['sre']);
      await user('creator', 'creator@x', ['dev']);
      tokens.set('agent', await h.agentToken('a1'));
      tokens.set('noToken', undefined);
      await h.user('other@x', ['ops']);
      await user('revoked', 'revoked@x', ['dev', 'admin']);
      const { tokens: revokedTokens } = await h.api.call(h.api.users, h.api.users.listTokens, { subject: 'revoked@x' });
      await h.api.call(h.api.users, h.api.users.revokeToken, { id: revokedTokens[0]!.id });
      await user('inactive', 'inactive@x', ['dev', 'admin']);
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'inactive@x', active: false }), updateMask: ['active'] });
    });

    after(async () => {
      await h?.close();
    });

    for (const { name, make } of TRANSPORTS) {
      it(`answers every RPC for every caller as documented (${name})`, async () => {
        const methods = await generatedMethods();
        const transport = make({ grpc: h.address, http: h.server.httpUrl! });
        const creator = clients.get('creator')!;
        const reviewer = clients.get('reviewer')!;
        let targets = 0;
        let last: Task | undefined;
        const fx: Fixtures = {
          pending: async () => {
            last = (await creator.call(creator.tasks, creator.tasks.createTask, { target: 'prod', script: 'true', message: '', type: '', timeoutSeconds: 0 })).task!;
            return last;
          },
          lastPending: () => last!,
          approved: async () => {
            const task = await fx.pending();
            const req = { id: task.id, decision: ReviewDecision.REVIEW_DECISION_APPROVE, group: 'dba', comment: '' };
            return (await reviewer.call(reviewer.tasks, reviewer.tasks.reviewTask, req)).task!;
          },
          freshTarget: async () => {
            // Named per transport: the table runs once per transport on one server.
            const target = `fresh-${name.toLowerCase()}-${targets++}`;
            await h.createTarget(target, 'a1');
            return target;
          },
          creatorToken: async () => (await h.api.call(h.api.users, h.api.users.createToken, { user: 'creator@x', name: 'spare', ttl: undefined })).token!.id,
          freshSecret: async () => {
            const key = `S${name.toUpperCase()}${targets++}`;
            await h.api.call(h.api.targets, h.api.targets.setSecret, { target: 'prod', key, value: 'v' });
            return key;
          },
        };
        const wrong: string[] = [];
        try {
          for (const row of ROWS) {
            const method = methods.get(row.rpc.replace(/ \(.*\)$/, ''))!;
            for (const caller of CALLERS) {
              const want = (name === 'Connect' ? row.overConnect : undefined) ?? row.expect[caller] ?? row.expect.rest;
              const token = tokens.get(caller);
              let got: Outcome;
              try {
                if (row.custom && name === 'gRPC') {
                  await row.custom(h.address, token);
                  got = OK;
                } else {
                  const response = await transport.call(method, await row.request(fx), token);
                  got = row.outcome ? `${OK} ${await row.outcome(response, fx)}` : OK;
                }
              } catch (err) {
                const code = (err as ServiceError).code;
                if (code === undefined) throw err;
                got = status[code];
              }
              if (got !== want) wrong.push(`${row.rpc} as ${caller}: expected ${want}, got ${got}`);
            }
          }
        } finally {
          transport.close();
        }
        expect(wrong, wrong.join('\n')).to.deep.equal([]);
      });
    }

    it('lists exactly the tasks a caller may see, one store query per page however many are hidden', async () => {
      const listQueries = async (): Promise<number> => {
        const metric = await h.server.metrics.registry.getSingleMetric('taskgate_store_operation_seconds')!.get();
        return metric.values.filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.op === 'listTasks').reduce((sum, v) => sum + v.value, 0);
      };
      await h.createTarget('vault', 'a1', 'bash', { groups: ['admin'] });
      // 300 tasks nobody but admins may see (more than one batch of the old scan), then one the non-member may.
      for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 10 }, () => h.createTask('vault', 'true')));
      await h.createTarget('opsbox', 'a1', 'bash', { groups: ['ops'] });
      const nonMember = clients.get('nonMember')!;
      const { task: theirs } = await nonMember.call(nonMember.tasks, nonMember.tasks.createTask, { target: 'opsbox', script: 'true', message: '', type: '', timeoutSeconds: 0 });
      const visible = async (api: Api): Promise<string[]> => {
        const ids: string[] = [];
        for (let token = ''; ; ) {
          const page = await api.call(api.tasks, api.tasks.listTasks, { pageSize: 100, pageToken: token, statuses: [], target: '', awaitingMyReview: false, createdByMe: false });
          ids.push(...page.tasks.map((t) => t.id));
          if (!page.nextPageToken) return ids;
          token = page.nextPageToken;
        }
      };
      // Each listed task is one GetTask would show them, and none of the vault's.
      for (const caller of ['member', 'nonMember', 'reviewer', 'otherReviewer', 'creator'] as const) {
        const api = clients.get(caller)!;
        for (const id of await visible(api)) await api.call(api.tasks, api.tasks.getTask, { id });
      }
      const before = await listQueries();
      const page = await nonMember.call(nonMember.tasks, nonMember.tasks.listTasks, { pageSize: 1, pageToken: '', statuses: [], target: '', awaitingMyReview: false, createdByMe: false });
      expect(page.tasks.map((t) => t.id)).to.deep.equal([theirs!.id]);
      expect((await listQueries()) - before, 'store queries for one page').to.equal(1);
      // Admins list everything.
      expect((await visible(h.api)).length).to.be.at.least(301);
    });

    it('does not hand the tasks of a deleted target to a new target made under its name', async () => {
      const nonMember = clients.get('nonMember')!; // group ops
      const sre = clients.get('otherReviewer')!; // group sre
      await h.createTarget('reused', 'a1', 'bash', { groups: ['ops'] });
      const { task } = await nonMember.call(nonMember.tasks, nonMember.tasks.createTask, { target: 'reused', script: 'true', message: '', type: '', timeoutSeconds: 0 });
      await nonMember.call(nonMember.tasks, nonMember.tasks.killTask, { id: task!.id, reason: 'never mind' });
      await h.api.call(h.api.targets, h.api.targets.deleteTarget, { name: 'reused' });
      await h.createTarget('reused', 'a1', 'bash', { groups: ['sre'] });
      const seen = await sre.call(sre.tasks, sre.tasks.getTask, { id: task!.id }).then(() => 'seen', (err: ServiceError) => status[err.code]);
      expect(seen, 'GetTask by a user of the new target').to.equal('NOT_FOUND');
      const listed = await sre.call(sre.tasks, sre.tasks.listTasks, { pageSize: 500, pageToken: '', statuses: [], target: 'reused', awaitingMyReview: false, createdByMe: false });
      expect(listed.tasks.map((t) => t.id)).to.not.include(task!.id);
      // Its creator still sees it, and so do admins.
      expect((await nonMember.call(nonMember.tasks, nonMember.tasks.getTask, { id: task!.id })).task?.id).to.equal(task!.id);
      expect((await h.api.call(h.api.tasks, h.api.tasks.getTask, { id: task!.id })).task?.id).to.equal(task!.id);
    });

    it('lets members of the right group see a task only while it is theirs to see', async () => {
      // A task on a target whose groups change: the non-member sees it once the target opens up.
      const creator = clients.get('creator')!;
      const nonMember = clients.get('nonMember')!;
      const { task } = await creator.call(creator.tasks, creator.tasks.createTask, { target: 'prod', script: 'true', message: '', type: '', timeoutSeconds: 0 });
      const get = () => nonMember.call(nonMember.tasks, nonMember.tasks.getTask, { id: task!.id });
      let error: ServiceError | undefined;
      await get().catch((err: ServiceError) => (error = err));
      expect(error?.code).to.equal(status.NOT_FOUND);
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 'prod', groups: ['dev', 'ops'] }), updateMask: ['groups'] });
      expect((await get()).task?.id).to.equal(task!.id);
      await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 'prod', groups: ['dev'] }), updateMask: ['groups'] });
    });
  });
}
