/**
 * `taskgate dev` as the README starts it: one command gives a server, an
 * agent "local" and a bash target "local" that runs tasks at once. Its
 * target and its agent's token are made through the public API, so the audit
 * trail says the admin made them; a second start reuses what the first saved.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { CliProcess, freePort } from '../helpers/processes.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

describe('taskgate dev', function () {
  let dir: string;
  let dataDir: string;
  let address: string;
  let httpAddress: string;
  let dev: CliProcess | undefined;

  function taskgate(token: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, TASKGATE_SERVER: address, TASKGATE_TOKEN: token } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  /** Starts `taskgate dev` and returns the admin token its banner shows. */
  async function startDev(): Promise<string> {
    dev = new CliProcess(['dev', '--listen', address, '--http-listen', httpAddress, '--data-dir', dataDir]);
    await dev.until(/^Ctrl-C stops both\.$/);
    const token = /^Admin admin@localhost, token \(in (\S+)\): (\S+)$/m.exec(dev.output);
    expect(token?.[1]).to.equal(join(dataDir, 'admin.token'));
    return token![2]!;
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-dev-'));
    chmodSync(dir, 0o711);
    dataDir = join(dir, 'data');
    address = `127.0.0.1:${await freePort()}`;
    httpAddress = `127.0.0.1:${await freePort()}`;
  });

  afterEach(async () => {
    await dev?.terminate();
    dev = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts a server, agent "local" and target "local" that runs a task, with the target and agent token in the audit trail as the admin\'s', async () => {
    const token = await startDev();
    expect(dev!.output).to.contain(`Taskgate dev: server on ${address} (embedded store in ${dataDir}), agent "local" connected.`);
    // The data dir is not ./.taskgate: the printed commands name the token file, and run as printed (no token in the environment).
    const createLine = /^ {2}(npx taskgate tasks create .*)$/m.exec(dev!.output)?.[1];
    expect(createLine).to.equal(`npx taskgate tasks create -t local -s 'echo hello' --wait --server ${address} --token-file ${join(dataDir, 'admin.token')}`);
    const printed = await new Promise<string>((resolve, reject) =>
      execFile('sh', ['-c', createLine!], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}) } }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(printed).to.equal('hello\n');
    expect(readFileSync(join(dataDir, 'admin.token'), 'utf8')).to.equal(`${token}\n`);
    for (const file of ['admin.token', 'agent-local.token', 'secrets.key']) {
      expect((statSync(join(dataDir, file)).mode & 0o777).toString(8), file).to.equal('600');
    }
    const run = await taskgate(token, 'tasks', 'create', '-t', 'local', '-s', 'echo hello', '--wait');
    expect([run.code, run.stdout, run.stderr]).to.deep.equal([0, 'hello\n', '']);
    // The banner's curl line, run as printed (by a shell: it reads the token file).
    const curlLine = /^ {2}(curl .*)$/m.exec(dev!.output)?.[1];
    expect(curlLine).to.equal(
      `curl -H "authorization: Bearer $(cat ${join(dataDir, 'admin.token')})" -H 'content-type: application/json' -d '{}' http://${httpAddress}/taskgate.v1.TaskService/ListTasks`,
    );
    const listed = await new Promise<string>((resolve, reject) => execFile('sh', ['-c', `${curlLine!} -sS --fail-with-body`], (err, stdout) => (err ? reject(err) : resolve(stdout))));
    expect((JSON.parse(listed) as { tasks: Array<{ script: string; status: string }> }).tasks.map((t) => [t.script, t.status])).to.deep.equal([
      ['echo hello', 'TASK_STATUS_SUCCESS'],
      ['echo hello', 'TASK_STATUS_SUCCESS'],
    ]);
    const byAdmin = (await taskgate(token, 'events', 'list', '--actor', 'user:admin@localhost')).stdout.split('\n');
    expect(byAdmin.filter((l) => /\stoken\.created\s.*agent token for local$/.test(l))).to.have.length(1);
    expect(byAdmin.filter((l) => /\starget\.created\s+targets\/local\s+agent local, type bash, review none, groups everyone$/.test(l))).to.have.length(1);
    expect(await dev!.terminate()).to.equal(0);
    dev = undefined;
  });

  it('reuses the saved admin and agent tokens and the target on a second start', async () => {
    const first = await startDev();
    expect(await dev!.terminate()).to.equal(0);
    const agentToken = readFileSync(join(dataDir, 'agent-local.token'), 'utf8');
    expect(await startDev()).to.equal(first);
    expect(readFileSync(join(dataDir, 'agent-local.token'), 'utf8')).to.equal(agentToken);
    const events = (await taskgate(first, 'events', 'list')).stdout;
    expect(events.match(/\starget\.created\s/g)).to.have.length(1);
    expect(events.match(/\stoken\.created\s/g)).to.have.length(2); // the admin's and the agent's, once each
    const run = await taskgate(first, 'tasks', 'create', '-t', 'local', '-s', 'echo again', '--wait');
    expect([run.code, run.stdout]).to.deep.equal([0, 'again\n']);
  });
});
