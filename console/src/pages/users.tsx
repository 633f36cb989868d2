/**
 * Users & tokens (admin group): users with their groups and whether they
 * are active; every user token, revocable; new users and new tokens, the
 * token's secret shown once.
 */
import { useEffect, useState } from 'preact/hooks';
import { TokenKind, type Token, type User } from '../../../gen/es/taskgate/v1/user_pb.js';
import { errorMessage, userService } from '../api.js';
import { ErrorLine, TableWrap, Time } from '../components.js';

function groupList(text: string): string[] {
  return text
    .split(',')
    .map((group) => group.trim())
    .filter((group) => group !== '');
}

function UserRow({ user, onChange, onError }: { user: User; onChange: () => void; onError: (error: string) => void }) {
  const [groups, setGroups] = useState(user.groups.join(', '));
  const update = async (change: { groups?: string[]; active?: boolean }, paths: string[]): Promise<void> => {
    try {
      await userService.updateUser({ user: { email: user.email, ...change }, updateMask: { paths } });
      onChange();
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  const active = user.active !== false;
  return (
    <tr>
      <td>{user.email}</td>
      <td>{user.name}</td>
      <td>
        <form
          class="inline"
          onSubmit={(event) => {
            event.preventDefault();
            void update({ groups: groupList(groups) }, ['groups']);
          }}
        >
          <input type="text" aria-label={`Groups of ${user.email}`} value={groups} onInput={(event) => setGroups(event.currentTarget.value)} />
          <button type="submit">Save</button>
        </form>
      </td>
      <td>{active ? 'active' : 'inactive'}</td>
      <td>
        <button type="button" onClick={() => void update({ active: !active }, ['active'])}>
          {active ? 'Deactivate' : 'Activate'}
        </button>
      </td>
    </tr>
  );
}

/** The users and tokens page. */
export function UsersPage() {
  const [users, setUsers] = useState<User[]>([]);
  const [tokens, setTokens] = useState<Token[]>([]);
  const [error, setError] = useState('');
  const [version, setVersion] = useState(0);
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [groups, setGroups] = useState('');
  const [tokenUser, setTokenUser] = useState('');
  const [tokenName, setTokenName] = useState('');
  const [tokenDays, setTokenDays] = useState('');
  const [secret, setSecret] = useState('');
  const reload = (): void => setVersion((v) => v + 1);

  useEffect(() => {
    Promise.all([userService.listUsers({ pageSize: 500 }), userService.listTokens({ subject: '*' })])
      .then(([u, t]) => {
        setUsers(u.users);
        setTokens(t.tokens.filter((token) => token.kind !== TokenKind.AGENT));
      })
      .catch((e: unknown) => setError(errorMessage(e)));
  }, [version]);

  const act = async (call: () => Promise<unknown>): Promise<void> => {
    setError('');
    try {
      await call();
      reload();
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  return (
    <main>
      <h1>Users &amp; tokens</h1>
      <ErrorLine error={error} />
      <h2>Users</h2>
      <TableWrap label="Users">
        <thead>
          <tr>
            <th scope="col">Email</th>
            <th scope="col">Name</th>
            <th scope="col">Groups (comma-separated)</th>
            <th scope="col">State</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {users.map((user) => (
            <UserRow key={`${user.email}-${version}`} user={user} onChange={reload} onError={setError} />
          ))}
        </tbody>
      </TableWrap>
      <form
        class="stack"
        aria-label="New user"
        onSubmit={(event) => {
          event.preventDefault();
          void act(async () => {
            await userService.createUser({ user: { email, name, groups: groupList(groups) } });
            setEmail('');
            setName('');
            setGroups('');
          });
        }}
      >
        <h3>New user</h3>
        <label>
          Email
          <input type="email" required value={email} onInput={(event) => setEmail(event.currentTarget.value)} />
        </label>
        <label>
          Name
          <input type="text" value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <label>
          Groups (comma-separated)
          <input type="text" value={groups} onInput={(event) => setGroups(event.currentTarget.value)} />
        </label>
        <button type="submit">Create user</button>
      </form>

      <h2>Tokens</h2>
      <TableWrap label="Tokens">
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Kind</th>
            <th scope="col">Subject</th>
            <th scope="col">Name</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">Last used</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {tokens.map((token) => (
            <tr key={token.id} data-token-id={token.id}>
              <td class="mono">{token.id}</td>
              <td>{(TokenKind[token.kind] ?? '').toLowerCase()}</td>
              <td>{token.subject}</td>
              <td>{token.name}</td>
              <td>
                <Time time={token.created} />
              </td>
              <td>{token.expires ? <Time time={token.expires} /> : 'never'}</td>
              <td>{token.lastUsed ? <Time time={token.lastUsed} /> : 'never'}</td>
              <td>
                {token.revoked ? (
                  <>
                    revoked <Time time={token.revoked} />
                  </>
                ) : (
                  <button type="button" aria-label={`Revoke token ${token.id}`} onClick={() => void act(() => userService.revokeToken({ id: token.id }))}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </TableWrap>
      <form
        class="stack"
        aria-label="New token"
        onSubmit={(event) => {
          event.preventDefault();
          void act(async () => {
            const days = Number(tokenDays);
            const response = await userService.createToken({
              user: tokenUser,
              name: tokenName,
              ttl: days > 0 ? { seconds: BigInt(Math.round(days * 86_400)) } : undefined,
            });
            setSecret(response.secret);
            setTokenName('');
          });
        }}
      >
        <h3>New token</h3>
        <label>
          For user (email; empty: you)
          <input type="email" value={tokenUser} onInput={(event) => setTokenUser(event.currentTarget.value)} />
        </label>
        <label>
          Label
          <input type="text" value={tokenName} onInput={(event) => setTokenName(event.currentTarget.value)} />
        </label>
        <label>
          Valid for days (empty: until revoked)
          <input type="number" min={0} value={tokenDays} onInput={(event) => setTokenDays(event.currentTarget.value)} />
        </label>
        <button type="submit">Create token</button>
      </form>
      {secret ? (
        <div class="secret" role="status">
          <label for="new-secret">New token (shown once; copy it now)</label>
          <input id="new-secret" type="text" readOnly value={secret} onFocus={(event) => event.currentTarget.select()} data-testid="new-secret" />
          <button type="button" onClick={() => setSecret('')}>
            Done
          </button>
        </div>
      ) : null}
    </main>
  );
}
