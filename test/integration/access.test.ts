/**
 * The authorization table: every RPC, called by every kind of caller, gets
 * the answer docs/access.md promises. Runs against both stores.
 */
import { credentials, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { AgentServiceClient, ConnectRequest, type ConnectResponse } from '../../gen/taskgate/v1/agent.js';
import { Target } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision, type Task } from '../../gen/taskgate/v1/task.js';
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

/** Rows: an RPC and the outcome per caller; callers not named get `rest`. */
interface Row {
  rpc: string;
  expect: Partial<Record<Caller, Outcome>> & { rest: Outcome };
  call: (api: Api, fx: Fixtures) => Promise<unknown>;
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
}

const NOT_USERS = { agent: PD, noToken: UA, revoked: UA, inactive: UA };
/** Any user may; tokens that are not a valid user's are refused. */
const ANY_USER = { ...NOT_USERS, rest: OK };
/** Only the admin group. */
const ADMIN_ONLY = { ...NOT_USERS, admin: OK, rest: PD };
/** Reading a task: who may see it; everyone else is told it does not exist. */
const SEE_TASK = { ...NOT_USERS, admin: OK, member: OK, reviewer: OK, creator: OK, rest: NF };

async function firstMessage(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) return;
}

const ROWS: Row[] = [
  {
    rpc: 'TaskService/CreateTask',
    expect: { ...NOT_USERS, admin: OK, member: OK, creator: OK, rest: PD },
    call: (api) => api.call(api.tasks, api.tasks.createTask, { target: 'prod', script: 'true', message: '', type: '', timeoutSeconds: 0 }),
  },
  { rpc: 'TaskService/GetTask', expect: SEE_TASK, call: async (api, fx) => api.call(api.tasks, api.tasks.getTask, { id: (await fx.pending()).id }) },
  {
    rpc: 'TaskService/ListTasks',
    expect: { ...NOT_USERS, admin: 'OK sees', member: 'OK sees', reviewer: 'OK sees', creator: 'OK sees', rest: 'OK hidden' },
    call: async (api, fx) => {
      const task = await fx.pending();
      const res = await api.call(api.tasks, api.tasks.listTasks, { statuses: [], target: '', pageSize: 0, pageToken: '', awaitingMyReview: false });
      return res.tasks.some((t) => t.id === task.id) ? 'sees' : 'hidden';
    },
  },
  {
    rpc: 'TaskService/ReviewTask',
    expect: { ...NOT_USERS, admin: PD, member: PD, reviewer: OK, creator: PD, rest: NF },
    call: async (api, fx) =>
      api.call(api.tasks, api.tasks.reviewTask, { id: (await fx.pending()).id, decision: ReviewDecision.REVIEW_DECISION_APPROVE, group: '', comment: '' }),
  },
  {
    rpc: 'TaskService/RunTask',
    expect: { ...NOT_USERS, admin: OK, creator: OK, member: PD, reviewer: PD, rest: NF },
    call: async (api, fx) => api.call(api.tasks, api.tasks.runTask, { id: (await fx.approved()).id }),
  },
  {
    rpc: 'TaskService/WatchTask',
    expect: SEE_TASK,
    call: async (api, fx) => {
      const call = api.tasks.watchTask({ id: (await fx.pending()).id }, api.metadata);
      await firstMessage(call);
      call.cancel();
    },
  },
  {
    rpc: 'TaskService/GetTaskLogs',
    expect: SEE_TASK,
    call: async (api, fx) => firstMessage(api.tasks.getTaskLogs({ id: (await fx.pending()).id, offset: 0, follow: false }, api.metadata)),
  },
  {
    rpc: 'TargetService/CreateTarget',
    expect: ADMIN_ONLY,
    call: (api) => api.call(api.targets, api.targets.createTarget, { target: Target.fromPartial({ name: `t-${Math.random().toString(36).slice(2, 10)}`, agent: 'a1' }) }),
  },
  { rpc: 'TargetService/GetTarget', expect: ANY_USER, call: (api) => api.call(api.targets, api.targets.getTarget, { name: 'prod' }) },
  { rpc: 'TargetService/ListTargets', expect: ANY_USER, call: (api) => api.call(api.targets, api.targets.listTargets, { pageSize: 0, pageToken: '' }) },
  {
    rpc: 'TargetService/UpdateTarget',
    expect: ADMIN_ONLY,
    call: async (api, fx) =>
      api.call(api.targets, api.targets.updateTarget, { target: Target.fromPartial({ name: await fx.freshTarget(), message: 'new' }), updateMask: ['message'] }),
  },
  {
    rpc: 'TargetService/DeleteTarget',
    expect: ADMIN_ONLY,
    call: async (api, fx) => api.call(api.targets, api.targets.deleteTarget, { name: await fx.freshTarget() }),
  },
  { rpc: 'TargetService/SetSecret', expect: ADMIN_ONLY, call: (api) => api.call(api.targets, api.targets.setSecret, { target: 'prod', key: 'K', value: 'v' }) },
  { rpc: 'TargetService/ListSecrets', expect: ADMIN_ONLY, call: (api) => api.call(api.targets, api.targets.listSecrets, { target: 'prod' }) },
  {
    rpc: 'TargetService/DeleteSecret',
    expect: ADMIN_ONLY,
    call: async (api, fx) => api.call(api.targets, api.targets.deleteSecret, { target: 'prod', key: await fx.freshSecret() }),
  },
  { rpc: 'AgentService/ListAgents', expect: ANY_USER, call: (api) => api.call(api.agents, api.agents.listAgents, {}) },
  { rpc: 'AgentService/CreateAgentToken', expect: ADMIN_ONLY, call: (api) => api.call(api.agents, api.agents.createAgentToken, { name: 'a9' }) },
  {
    rpc: 'AgentService/Connect',
    expect: { agent: OK, noToken: UA, revoked: UA, inactive: UA, rest: PD },
    call: async (api) => {
      const client = new AgentServiceClient(api.server, credentials.createInsecure());
      try {
        const stream: ClientDuplexStream<ConnectRequest, ConnectResponse> = client.connect(api.metadata);
        stream.write(ConnectRequest.fromPartial({ message: { $case: 'hello', value: { name: 'a1', version: 'test', bootId: 'b1' } } }));
        await firstMessage(stream);
        stream.cancel();
      } finally {
        client.close();
      }
    },
  },
  {
    rpc: 'UserService/CreateUser',
    expect: ADMIN_ONLY,
    call: (api) => api.call(api.users, api.users.createUser, { user: User.fromPartial({ email: `u${Math.random().toString(36).slice(2)}@x`, groups: [] }) }),
  },
  { rpc: 'UserService/GetUser (another user)', expect: ADMIN_ONLY, call: (api) => api.call(api.users, api.users.getUser, { email: 'other@x' }) },
  { rpc: 'UserService/ListUsers', expect: ADMIN_ONLY, call: (api) => api.call(api.users, api.users.listUsers, { pageSize: 0, pageToken: '' }) },
  {
    rpc: 'UserService/UpdateUser',
    expect: ADMIN_ONLY,
    call: (api) => api.call(api.users, api.users.updateUser, { user: User.fromPartial({ email: 'other@x', name: 'N' }), updateMask: ['name'] }),
  },
  { rpc: 'UserService/WhoAmI', expect: ANY_USER, call: (api) => api.call(api.users, api.users.whoAmI, {}) },
  { rpc: 'UserService/CreateToken (own)', expect: ANY_USER, call: (api) => api.call(api.users, api.users.createToken, { user: '', name: '' }) },
  { rpc: 'UserService/CreateToken (another user)', expect: ADMIN_ONLY, call: (api) => api.call(api.users, api.users.createToken, { user: 'other@x', name: '' }) },
  { rpc: 'UserService/ListTokens (own)', expect: ANY_USER, call: (api) => api.call(api.users, api.users.listTokens, { subject: '' }) },
  { rpc: 'UserService/ListTokens (all)', expect: ADMIN_ONLY, call: (api) => api.call(api.users, api.users.listTokens, { subject: '*' }) },
  {
    rpc: "UserService/RevokeToken (the creator's)",
    expect: { ...NOT_USERS, admin: OK, creator: OK, rest: NF },
    call: async (api, fx) => api.call(api.users, api.users.revokeToken, { id: await fx.creatorToken() }),
  },
  { rpc: 'EventService/ListEvents', expect: ADMIN_ONLY, call: (api) => api.call(api.events, api.events.listEvents, { actor: '', resource: '', since: undefined, until: undefined, pageSize: 0, pageToken: '' }) },
];

for (const kind of STORE_KINDS) {
  describe(`authorization table: ${kind.name}`, function () {
    let h: Harness;
    const clients = new Map<Caller, Api>();

    before(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location, { secretsKey: randomBytes(32) });
      await h.createTarget('prod', 'a1', 'bash', { groups: ['dev'], review: 3 /* TEAM */, reviewers: ['dba'] });
      clients.set('admin', h.api);
      clients.set('member', await h.user('member@x', ['dev']));
      clients.set('nonMember', await h.user('nonmember@x', ['ops']));
      clients.set('reviewer', await h.user('reviewer@x', ['dba']));
      clients.set('otherReviewer', await h.user('sre@x', ['sre']));
      clients.set('creator', await h.user('creator@x', ['dev']));
      clients.set('agent', h.client(await h.agentToken('a1')));
      await h.user('other@x', ['ops']);
      const noToken = h.client('none');
      noToken.metadata.remove('authorization');
      clients.set('noToken', noToken);
      const revoked = await h.user('revoked@x', ['dev', 'admin']);
      const { tokens } = await h.api.call(h.api.users, h.api.users.listTokens, { subject: 'revoked@x' });
      await h.api.call(h.api.users, h.api.users.revokeToken, { id: tokens[0]!.id });
      clients.set('revoked', revoked);
      const inactive = await h.user('inactive@x', ['dev', 'admin']);
      await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'inactive@x', active: false }), updateMask: ['active'] });
      clients.set('inactive', inactive);
    });

    after(async () => {
      await h?.close();
    });

    it('answers every RPC for every caller as documented', async () => {
      const creator = clients.get('creator')!;
      const reviewer = clients.get('reviewer')!;
      let targets = 0;
      const fx: Fixtures = {
        pending: async () => (await creator.call(creator.tasks, creator.tasks.createTask, { target: 'prod', script: 'true', message: '', type: '', timeoutSeconds: 0 })).task!,
        approved: async () => {
          const task = await fx.pending();
          const req = { id: task.id, decision: ReviewDecision.REVIEW_DECISION_APPROVE, group: 'dba', comment: '' };
          return (await reviewer.call(reviewer.tasks, reviewer.tasks.reviewTask, req)).task!;
        },
        freshTarget: async () => {
          const name = `fresh-${targets++}`;
          await h.createTarget(name, 'a1');
          return name;
        },
        creatorToken: async () => (await h.api.call(h.api.users, h.api.users.createToken, { user: 'creator@x', name: 'spare' })).token!.id,
        freshSecret: async () => {
          const key = `S${targets++}`;
          await h.api.call(h.api.targets, h.api.targets.setSecret, { target: 'prod', key, value: 'v' });
          return key;
        },
      };
      const wrong: string[] = [];
      let checked = 0;
      for (const row of ROWS) {
        for (const caller of CALLERS) {
          const want = row.expect[caller] ?? row.expect.rest;
          let got: Outcome;
          try {
            const result = await row.call(clients.get(caller)!, fx);
            got = typeof result === 'string' ? `${OK} ${result}` : OK;
          } catch (err) {
            const code = (err as ServiceError).code;
            if (code === undefined) throw err;
            got = status[code];
          }
          checked++;
          if (got !== want) wrong.push(`${row.rpc} as ${caller}: expected ${want}, got ${got}`);
        }
      }
      expect(wrong, wrong.join('\n')).to.deep.equal([]);
      expect(checked).to.equal(ROWS.length * CALLERS.length);
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
