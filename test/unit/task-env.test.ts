/** A task's environment is built from an allowlist, never inherited (agent/task-env.ts). */
import { expect } from 'chai';
import { secretNameProblem } from '../../shared/env-names.js';
import { buildTaskEnv, checkPassedNames, TaskEnvError, type TaskEnvInput } from '../../agent/task-env.js';

const agentEnv = {
  PATH: '/usr/bin:/bin',
  LANG: 'C.UTF-8',
  LC_ALL: 'C.UTF-8',
  TZ: 'UTC',
  PROD_SECRETS: '{"DB_PASS":"x"}',
  TASKGATE_AGENT_TOKEN: 'tg_agent_secret',
  HTTPS_PROXY: 'http://proxy:3128',
  AWS_REGION: 'eu-west-1',
  AWS_SECRET_ACCESS_KEY: 'nope',
};

function input(overrides: Partial<TaskEnvInput> = {}): TaskEnvInput {
  return {
    agentEnv,
    passed: [],
    home: '/work/runs-1/T1',
    tmp: '/work/runs-1/T1/tmp',
    user: '',
    secrets: { DB_PASS: 'p4ss' },
    commandEnv: {},
    metadata: { taskId: 'T1', target: 'db', user: 'dev@example.com', groups: ['dev', 'ops'], message: 'why' },
    ...overrides,
  };
}

describe('task environment', () => {
  it('passes only PATH, locale and time zone from the agent, plus the task and its own secrets', () => {
    expect(buildTaskEnv(input())).to.deep.equal({
      PATH: '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      TERM: 'xterm-256color',
      HOME: '/work/runs-1/T1',
      TMPDIR: '/work/runs-1/T1/tmp',
      DB_PASS: 'p4ss',
      TASKGATE_TASK_ID: 'T1',
      TASKGATE_TARGET: 'db',
      TASKGATE_USER: 'dev@example.com',
      TASKGATE_USER_GROUPS: 'dev,ops',
      TASKGATE_MESSAGE: 'why',
    });
  });

  it('adds names and prefixes given with --task-env, never TASKGATE_*', () => {
    const env = buildTaskEnv(input({ passed: ['HTTPS_PROXY', 'AWS_REGION'] }));
    expect(env.HTTPS_PROXY).to.equal('http://proxy:3128');
    expect(env.AWS_REGION).to.equal('eu-west-1');
    expect(env).not.to.have.property('AWS_SECRET_ACCESS_KEY');
    expect(buildTaskEnv(input({ passed: ['AWS_*'] }))).to.include({ AWS_SECRET_ACCESS_KEY: 'nope' });
    expect(() => checkPassedNames(['TASKGATE_AGENT_TOKEN'])).to.throw(/never passed to tasks/);
    expect(() => checkPassedNames(['TASKGATE_*'])).to.throw(/never passed to tasks/);
    expect(() => checkPassedNames(['A B'])).to.throw(/not a variable name/);
  });

  it('sets USER and LOGNAME for a run-as user', () => {
    expect(buildTaskEnv(input({ user: 'postgres' }))).to.include({ USER: 'postgres', LOGNAME: 'postgres' });
  });

  it('refuses a secret that would hijack the interpreter or pose as task metadata, naming it', () => {
    for (const name of ['PATH', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'BASH_ENV', 'ENV', 'PYTHONPATH', 'NODE_OPTIONS', 'TASKGATE_USER', 'BASH_FUNC_x%%', 'ld_preload']) {
      expect(() => buildTaskEnv(input({ secrets: { [name]: 'x' } })), name).to.throw(TaskEnvError, name);
      expect(secretNameProblem(name), name).to.be.a('string');
    }
    expect(secretNameProblem('PG_PASS')).to.equal(null);
    expect(secretNameProblem('9LIVES')).to.match(/not an environment variable name/);
  });
});
