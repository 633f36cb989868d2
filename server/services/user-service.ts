/** UserService: users (admin group) and API tokens (each user's own; admins: anyone's). */
import {
  type CreateTokenRequest,
  type CreateTokenResponse,
  type CreateUserRequest,
  type CreateUserResponse,
  type GetUserRequest,
  type GetUserResponse,
  type ListTokensRequest,
  type ListTokensResponse,
  type ListUsersRequest,
  type ListUsersResponse,
  type RevokeTokenRequest,
  type RevokeTokenResponse,
  type UpdateUserRequest,
  type UpdateUserResponse,
  UserServiceService,
  type WhoAmIResponse,
} from '../../gen/taskgate/v1/user.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../shared/errors.js';
import { ADMIN_GROUP, isAdmin } from '../access.js';
import type { EventPublisher } from '../audit.js';
import { actorOf, type Authenticator } from '../auth.js';
import { tokenToWire, userToWire } from '../convert.js';
import type { UserStore, UserPatch, UserRecord } from '../store/store.js';
import { checkEmail, checkGroups, checkPlainText, checkSize, checkTtl, pageSize, pageToken } from '../validate.js';
import type { ServiceSpec, UserContext } from '../rpc/core.js';

/** Fields UpdateUser may change, by their proto names. */
const UPDATABLE = ['name', 'groups', 'active'] as const;
const MAX_NAME_BYTES = 256;

/** The UserService implementation. */
export function userService(store: UserStore, auth: Authenticator, audit: EventPublisher): ServiceSpec<typeof UserServiceService> {
  async function mustGet(email: string): Promise<UserRecord> {
    if (email === '') throw new InvalidArgumentError('email is required');
    const user = await store.getUser(email);
    if (!user) throw new NotFoundError(`user ${email} not found`);
    return user;
  }

  async function createUser(req: CreateUserRequest, { user: caller }: UserContext): Promise<CreateUserResponse> {
    const u = req.user;
    if (!u) throw new InvalidArgumentError('user is required');
    const now = new Date();
    const user: UserRecord = {
      email: checkEmail('user.email', u.email),
      name: checkPlainText('user.name', checkSize('user.name', u.name, MAX_NAME_BYTES)),
      groups: checkGroups('user.groups', u.groups),
      active: u.active ?? true,
      created: now,
      updated: now,
    };
    await store.insertUser(user);
    await audit.record({
      actor: actorOf(caller),
      action: 'user.created',
      resource: `users/${user.email}`,
      detail: `groups ${user.groups.join(', ') || 'none'}`,
    });
    return { user: userToWire(user) };
  }

  async function getUser(req: GetUserRequest, { user: caller }: UserContext): Promise<GetUserResponse> {
    if (req.email !== caller.email && !isAdmin(caller)) throw new PermissionDeniedError('only admins may read other users');
    return { user: userToWire(await mustGet(req.email)) };
  }

  async function listUsers(req: ListUsersRequest): Promise<ListUsersResponse> {
    const limit = pageSize(req.pageSize, 100);
    const users = await store.listUsers(pageToken.decode(req.pageToken), limit + 1);
    const page = users.slice(0, limit);
    const last = page[page.length - 1];
    return { users: page.map(userToWire), nextPageToken: users.length > limit && last ? pageToken.encode(last.email) : '' };
  }

  async function updateUser(req: UpdateUserRequest, { user: caller }: UserContext): Promise<UpdateUserResponse> {
    const u = req.user;
    if (!u) throw new InvalidArgumentError('user is required');
    const before = await mustGet(u.email);
    const paths = req.updateMask?.length ? req.updateMask : [...UPDATABLE];
    const patch: UserPatch = {};
    for (const path of paths) {
      switch (path) {
        case 'name':
          patch.name = checkPlainText('user.name', checkSize('user.name', u.name, MAX_NAME_BYTES));
          break;
        case 'groups':
          patch.groups = checkGroups('user.groups', u.groups);
          break;
        case 'active':
          patch.active = u.active ?? true;
          break;
        default:
          throw new InvalidArgumentError(`update_mask path "${path}" cannot be updated; use ${UPDATABLE.join(', ')}`);
      }
    }
    // An admin cannot lock everyone out by removing their own admin rights.
    const demotesSelf = before.email === caller.email && (patch.active === false || (patch.groups && !patch.groups.includes(ADMIN_GROUP)));
    if (demotesSelf) throw new FailedPreconditionError('you cannot deactivate yourself or leave the admin group; ask another admin');
    const updated = await store.updateUser(u.email, patch, new Date());
    if (!updated) throw new NotFoundError(`user ${u.email} not found`);
    // Deactivation ends the user's console sessions for good: reactivating
    // the user does not bring back a browser (or a stolen cookie) signed in before.
    const ended = patch.active === false ? await endSessions(updated.email) : 0;
    auth.invalidate();
    if (ended > 0) await audit.record({ actor: actorOf(caller), action: 'session.ended', resource: `users/${updated.email}`, detail: `${ended} console session(s) ended by deactivation` });
    const changes = (Object.keys(patch) as (keyof UserPatch)[])
      .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(updated[k]))
      .map((k) => `${k}: ${JSON.stringify(before[k])} -> ${JSON.stringify(updated[k])}`);
    await audit.record({ actor: actorOf(caller), action: 'user.updated', resource: `users/${updated.email}`, detail: changes.join('; ') || 'no change' });
    return { user: userToWire(updated) };
  }

  /** Revokes every console session of the user still valid; how many. */
  async function endSessions(email: string): Promise<number> {
    const now = new Date();
    const open = (await store.listTokens(email)).filter((t) => t.kind === 'session' && !t.revoked);
    for (const session of open) await store.revokeToken(session.id, now);
    return open.length;
  }

  async function whoAmI(_req: unknown, { user: caller }: UserContext): Promise<WhoAmIResponse> {
    const [user, token] = await Promise.all([mustGet(caller.email), store.getToken(caller.tokenId)]);
    return { user: userToWire(user), agent: '', token: token ? tokenToWire(token) : undefined };
  }

  async function createToken(req: CreateTokenRequest, { user: caller }: UserContext): Promise<CreateTokenResponse> {
    const email = req.user || caller.email;
    if (email !== caller.email && !isAdmin(caller)) throw new PermissionDeniedError('only admins may create tokens for other users');
    const user = await mustGet(email);
    if (!user.active) throw new FailedPreconditionError(`user ${email} is deactivated`);
    // Made in a console session: it ends with the token that session was
    // signed in with, and never outlives it, so a stolen cookie cannot be
    // turned into lasting access (docs/console.md "Signing in").
    const session = await store.getToken(caller.tokenId);
    const root = session?.kind === 'session' && session.parent ? await store.getToken(session.parent) : null;
    const asked = checkTtl('ttl', req.ttl, new Date());
    const limit = root?.expires ?? null;
    const { secret, record } = await auth.issue('user', email, {
      name: checkPlainText('name', checkSize('name', req.name, MAX_NAME_BYTES)),
      createdBy: actorOf(caller),
      expires: limit && (!asked || asked > limit) ? limit : asked,
      ...(root ? { parent: root.id } : {}),
    });
    const expiry = record.expires ? `, expires ${record.expires.toISOString()}` : '';
    await audit.record({ actor: actorOf(caller), action: 'token.created', resource: `tokens/${record.id}`, detail: `user token for ${email}${record.name ? ` (${record.name})` : ''}${expiry}` });
    return { secret, token: tokenToWire(record) };
  }

  async function listTokens(req: ListTokensRequest, { user: caller }: UserContext): Promise<ListTokensResponse> {
    const subject = req.subject || caller.email;
    if (subject !== caller.email && !isAdmin(caller)) throw new PermissionDeniedError("only admins may list other users' tokens");
    const tokens = await store.listTokens(subject === '*' ? undefined : subject);
    return { tokens: tokens.map(tokenToWire) };
  }

  async function revokeToken(req: RevokeTokenRequest, { user: caller }: UserContext): Promise<RevokeTokenResponse> {
    if (req.id === '') throw new InvalidArgumentError('id is required');
    const token = await store.getToken(req.id);
    // Someone else's token is NOT_FOUND to a non-admin: ids do not leak.
    if (!token || (!isAdmin(caller) && !(token.kind !== 'agent' && token.subject === caller.email))) {
      throw new NotFoundError(`token ${req.id} not found`);
    }
    const revoked = await store.revokeToken(req.id, new Date());
    if (!revoked) throw new NotFoundError(`token ${req.id} not found`);
    auth.invalidate();
    if (!token.revoked) {
      const what = token.kind === 'session' ? 'console session' : `${token.kind} token`;
      await audit.record({ actor: actorOf(caller), action: 'token.revoked', resource: `tokens/${token.id}`, detail: `${what} of ${token.subject}` });
    }
    return { token: tokenToWire(revoked) };
  }

  return {
    definition: UserServiceService,
    access: {
      createUser: 'admin',
      getUser: 'user',
      listUsers: 'admin',
      updateUser: 'admin',
      whoAmI: 'user',
      createToken: 'user',
      listTokens: 'user',
      revokeToken: 'user',
    },
    methods: { createUser, getUser, listUsers, updateUser, whoAmI, createToken, listTokens, revokeToken },
  };
}
