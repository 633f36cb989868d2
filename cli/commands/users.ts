/** `taskgate users ...`, `taskgate tokens ...` and `taskgate whoami`. */
import { Command } from 'commander';
import { CreateTokenResponse, ListTokensResponse, ListUsersResponse, Token, TokenKind, User, WhoAmIResponse } from '../../gen/taskgate/v1/user.js';
import { type Api, CliError, type ClientOptions } from '../client.js';
import { EXIT_USAGE } from '../exit-codes.js';
import { list, printJson, table, time, ttlOption } from '../format.js';

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as ClientOptions).json);
}

function userRows(users: User[]): string[][] {
  return users.map((u) => [u.email, u.name, u.groups.join(','), u.active === false ? 'no' : 'yes', time(u.created)]);
}

function printUsers(cmd: Command, users: User[]): void {
  if (json(cmd)) printJson('taskgate.v1.ListUsersResponse', ListUsersResponse, { users, nextPageToken: '' });
  else process.stdout.write(`${table(['EMAIL', 'NAME', 'GROUPS', 'ACTIVE', 'CREATED'], userRows(users))}\n`);
}

function tokenRows(tokens: Token[]): string[][] {
  return tokens.map((t) => [
    t.id,
    t.kind === TokenKind.TOKEN_KIND_AGENT ? 'agent' : t.kind === TokenKind.TOKEN_KIND_SESSION ? 'session' : 'user',
    t.subject,
    t.name,
    time(t.created),
    t.expires ? time(t.expires) : 'never',
    t.lastUsed ? time(t.lastUsed) : 'never',
    t.revoked ? `revoked ${time(t.revoked)}` : t.expires && t.expires.getTime() <= Date.now() ? 'expired' : 'valid',
  ]);
}

/** The `users` command group. */
export function usersCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const users = new Command('users').description('manage users and their groups (admin)');

  withClient(users.command('create'))
    .description('create a user')
    .requiredOption('--email <email>', 'email address (the user id)')
    .option('--name <name>', 'display name', '')
    .option('--groups <groups>', 'comma-separated groups, e.g. dev,dba ("admin" administers Taskgate)', '')
    .action(async (opts: { email: string; name: string; groups: string }, cmd: Command) => {
      const client = api(cmd);
      const { user } = await client.call(client.users, client.users.createUser, {
        user: User.fromPartial({ email: opts.email, name: opts.name, groups: list(opts.groups) }),
      });
      if (!user) throw new CliError('the server returned no user');
      printUsers(cmd, [user]);
    });

  withClient(users.command('list'))
    .description('list users')
    .action(async (_opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const all: User[] = [];
      let pageToken = '';
      do {
        const res = await client.call(client.users, client.users.listUsers, { pageSize: 500, pageToken });
        all.push(...res.users);
        pageToken = res.nextPageToken;
      } while (pageToken);
      printUsers(cmd, all);
    });

  withClient(users.command('get'))
    .description('show a user')
    .argument('<email>', 'email address')
    .action(async (email: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const { user } = await client.call(client.users, client.users.getUser, { email });
      if (!user) throw new CliError('the server returned no user');
      printUsers(cmd, [user]);
    });

  withClient(users.command('update'))
    .description('change a user; only the options given change')
    .argument('<email>', 'email address')
    .option('--name <name>', 'display name')
    .option('--groups <groups>', 'comma-separated groups (replaces the current ones)')
    .option('--active', 'let the user sign in')
    .option('--inactive', "refuse the user's tokens")
    .action(async (email: string, opts: { name?: string; groups?: string; active?: boolean; inactive?: boolean }, cmd: Command) => {
      if (opts.active && opts.inactive) throw new CliError('give --active or --inactive, not both', EXIT_USAGE);
      const fields: Partial<User> = { email };
      const mask: string[] = [];
      if (opts.name !== undefined) {
        fields.name = opts.name;
        mask.push('name');
      }
      if (opts.groups !== undefined) {
        fields.groups = list(opts.groups);
        mask.push('groups');
      }
      if (opts.active || opts.inactive) {
        fields.active = Boolean(opts.active);
        mask.push('active');
      }
      if (mask.length === 0) throw new CliError('nothing to change: give --name, --groups, --active or --inactive', EXIT_USAGE);
      const client = api(cmd);
      const { user } = await client.call(client.users, client.users.updateUser, { user: User.fromPartial(fields), updateMask: mask });
      if (!user) throw new CliError('the server returned no user');
      printUsers(cmd, [user]);
    });

  return users;
}

/** The `tokens` command group. */
export function tokensCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const tokens = new Command('tokens').description('API tokens: create (shown once), list, revoke');

  withClient(tokens.command('create'))
    .description('create a user token; prints the secret once')
    .option('--user <email>', 'for another user (admin)', '')
    .option('--name <label>', 'a label to tell tokens apart', '')
    .option('--expires <duration>', 'valid for this long (e.g. 90m, 12h, 30d); default: until revoked')
    .action(async (opts: { user: string; name: string; expires?: string }, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.users, client.users.createToken, { user: opts.user, name: opts.name, ttl: ttlOption(opts.expires) });
      if (json(cmd)) {
        printJson('taskgate.v1.CreateTokenResponse', CreateTokenResponse, res);
        return;
      }
      process.stderr.write(`token ${res.token?.id ?? ''} for ${res.token?.subject ?? ''}; it is shown once, keep it secret:\n`);
      process.stdout.write(`${res.secret}\n`);
    });

  withClient(tokens.command('list'))
    .description('list your tokens (admins: --user EMAIL, an agent name, or "*" for all)')
    .option('--user <subject>', 'whose tokens', '')
    .action(async (opts: { user: string }, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.users, client.users.listTokens, { subject: opts.user });
      if (json(cmd)) printJson('taskgate.v1.ListTokensResponse', ListTokensResponse, res);
      else process.stdout.write(`${table(['ID', 'KIND', 'SUBJECT', 'NAME', 'CREATED', 'EXPIRES', 'LAST USED', 'STATE'], tokenRows(res.tokens))}\n`);
    });

  withClient(tokens.command('revoke'))
    .description('revoke a token; it is refused from now on')
    .argument('<id>', 'token id (from tokens list)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const { token } = await client.call(client.users, client.users.revokeToken, { id });
      if (json(cmd)) printJson('taskgate.v1.Token', Token, token ?? Token.create());
      else process.stdout.write(`revoked token ${id}\n`);
    });

  return tokens;
}

/** `taskgate whoami`. */
export function whoamiCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  return withClient(new Command('whoami'))
    .description('show who the token belongs to and their groups')
    .action(async (_opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.users, client.users.whoAmI, {});
      if (json(cmd)) {
        printJson('taskgate.v1.WhoAmIResponse', WhoAmIResponse, res);
        return;
      }
      const user = res.user;
      if (!user) throw new CliError('the server returned no user');
      process.stdout.write(`${user.email}${user.name ? ` (${user.name})` : ''}\ngroups: ${user.groups.join(', ') || 'none'}\ntoken: ${res.token?.id ?? '?'}\n`);
    });
}
