/**
 * What `taskgate server` leaves on disk, started as a service manager would
 * start it (umask 022): the data directory 0700, the admin token and the
 * embedded store (with its -wal and -shm files) 0600, and the admin token
 * only in its file, never on stderr (service logs keep stderr).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { freePort } from '../helpers/processes.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

describe('files of a first server start under umask 022', function () {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-files-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('are private, and the admin token goes only to its file', async () => {
    const data = join(dir, 'data');
    const port = await freePort();
    const child = spawn('sh', ['-c', `umask 022; exec "${process.execPath}" "${CLI}" server --listen 127.0.0.1:${port} --data-dir "${data}"`], {
      env: { PATH: process.env.PATH },
    });
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/First start: .*\n/.test(stderr)) resolve();
        });
      });
      expect(stderr).to.match(new RegExp(`First start: admin user admin@localhost, token written to ${join(data, 'admin.token')} \\(mode 0600; read it there: TASKGATE_TOKEN=\\$\\(cat ${join(data, 'admin.token')}\\)\\)\\n`));
      expect(stderr).not.to.contain('tg_user_');
      expect(mode(data)).to.equal('700');
      for (const file of ['admin.token', 'taskgate.db', 'taskgate.db-wal', 'taskgate.db-shm']) expect(mode(join(data, file)), file).to.equal('600');
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
    }
  });
});
