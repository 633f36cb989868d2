/**
 * Secrets resolved on the agent: they reach the task's environment, are
 * masked in its output, never reach the server's database, and a missing
 * one fails the task before anything runs, naming what is missing.
 */
import { expect } from 'chai';
import { Target } from '../../gen/taskgate/v1/target.js';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const PASSWORD = 'pa55-w0rd-7731';

describe('secrets from the agent (sqlite)', function () {
  let h: Harness;
  let dir: string;
  let dataDir: string;

  before(async () => {
    const location = (await STORE_KINDS[0]!.location())!;
    dataDir = location.options.dataDir!;
    h = await Harness.start(location, { secretsKey: randomBytes(32) });
    dir = mkdtempSync(join(tmpdir(), 'taskgate-secrets-'));
    writeFileSync(join(dir, 'db.json'), JSON.stringify({ host: 'db.internal', password: PASSWORD }));
    await h.startAgent('a1', { env: { PATH: process.env.PATH ?? '', DB_CONFIG: JSON.stringify({ host: 'db.internal', password: PASSWORD, port: 5432 }) } });
  });

  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('puts env and file secrets in the task environment, renamed, and masks their values', async () => {
    await h.createTarget('from-env', 'a1', 'bash', { secretProvider: 'env', secretPath: 'DB_CONFIG', secretMapping: { PG_PASS: 'password', PG_PORT: 'port' } });
    await h.createTarget('from-file', 'a1', 'bash', { secretProvider: 'file', secretPath: join(dir, 'db.json') });
    const dev = await h.user('dev@x', ['dev', 'ops']);
    const { task } = await dev.call(dev.tasks, dev.tasks.createTask, {
      target: 'from-env',
      // The script checks the value by its hash: the script itself is stored on the server.
      script: `echo "pass=$PG_PASS port=$PG_PORT host=\${host:-unset} user=$TASKGATE_USER groups=$TASKGATE_USER_GROUPS"; [ "$(printf %s "$PG_PASS" | sha256sum | cut -c1-64)" = "${createHash('sha256').update(PASSWORD).digest('hex')}" ] && echo same`,
      message: '',
      type: '',
      timeoutSeconds: 0,
    });
    const env = await h.finished(task!.id);
    // Every resolved value is masked, the port included.
    expect(env.output.toString()).to.equal('pass=*** port=*** host=unset user=dev@x groups=dev,ops\r\nsame\r\n');
    expect(env.task.findings).to.deep.equal({ SECRET: 2 });
    const file = await h.finished((await h.createTask('from-file', 'echo "$host $password"')).id);
    expect(file.output.toString()).to.equal('*** ***\r\n');
  });

  it('changes only the secret fields named in an update mask, as the README says', async () => {
    await h.createTarget('masked', 'a1', 'bash', { secretProvider: 'env', secretPath: 'DB_CONFIG', secretMapping: { PG_PASS: 'password' } });
    const { target } = await h.api.call(h.api.targets, h.api.targets.updateTarget, {
      target: Target.fromPartial({ name: 'masked', secretMapping: { DB_PASSWORD: 'password' } }),
      updateMask: ['secret_mapping'],
    });
    expect([target?.secretProvider, target?.secretPath, target?.secretMapping]).to.deep.equal(['env', 'DB_CONFIG', { DB_PASSWORD: 'password' }]);
    const { target: moved } = await h.api.call(h.api.targets, h.api.targets.updateTarget, {
      target: Target.fromPartial({ name: 'masked', secretPath: 'OTHER_CONFIG' }),
      updateMask: ['secret_path'],
    });
    expect([moved?.secretProvider, moved?.secretPath, moved?.secretMapping]).to.deep.equal(['env', 'OTHER_CONFIG', { DB_PASSWORD: 'password' }]);
  });

  it('fails a task whose secrets are missing before it runs, naming what is missing', async () => {
    await h.createTarget('no-var', 'a1', 'bash', { secretProvider: 'env', secretPath: 'NOPE' });
    await h.createTarget('no-key', 'a1', 'bash', { secretProvider: 'env', secretPath: 'DB_CONFIG', secretMapping: { X: 'user', Y: 'password' } });
    const [a, b] = await Promise.all(['no-var', 'no-key'].map(async (t) => h.finished((await h.createTask(t, `touch ${join(dir, 'ran')}`)).id)));
    expect([a!.task.status, a!.task.failureReason]).to.deep.equal([
      TaskStatus.TASK_STATUS_FAILURE,
      'could not start: secret provider env: variable NOPE is not set on this agent',
    ]);
    expect(b!.task.failureReason).to.equal('could not start: secret keys missing from env DB_CONFIG: user');
    expect(readdirSync(dir)).to.deep.equal(['db.json']);
  });

  it('keeps stored secrets encrypted, lists only their keys, and sends them only with the task', async () => {
    await h.createTarget('stored', 'a1', 'bash', { secretProvider: 'stored', secretMapping: { DB_PASS: 'db_pass' } });
    await h.api.call(h.api.targets, h.api.targets.setSecret, { target: 'stored', key: 'db_pass', value: PASSWORD });
    await h.api.call(h.api.targets, h.api.targets.setSecret, { target: 'stored', key: 'unused', value: 'other-value' });
    expect((await h.api.call(h.api.targets, h.api.targets.listSecrets, { target: 'stored' })).keys).to.deep.equal(['db_pass', 'unused']);
    const run = await h.finished((await h.createTask('stored', 'echo "pass=$DB_PASS unused=${unused:-absent}"')).id);
    expect(run.output.toString()).to.equal('pass=*** unused=absent\r\n');
    const dev = await h.user('dev2@x', ['dev']);
    const denied = await dev.call(dev.targets, dev.targets.listSecrets, { target: 'stored' }).catch((e: Error) => e.message);
    expect(denied).to.match(/PERMISSION_DENIED|admin/);
  });

  it('never stores a secret value on the server', async () => {
    const hits = readdirSync(dataDir).filter((f) => readFileSync(join(dataDir, f)).includes(PASSWORD));
    expect(hits).to.deep.equal([]);
  });
});
