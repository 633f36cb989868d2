/**
 * Which names a task's secret variables may have. A secret becomes an
 * environment variable of the task, so a target (or a secret object without
 * a mapping) could otherwise set variables that change how the interpreter
 * itself runs — `PATH`, `LD_PRELOAD`, `BASH_ENV` — or pose as Taskgate's own
 * task metadata. The server refuses such names in a target's mapping and in
 * stored secrets (INVALID_ARGUMENT); the agent refuses them when a secret
 * object without a mapping yields one (docs/isolation.md).
 */

/** Names the dynamic linker, a shell or an interpreter reads at start. */
export const RESERVED_ENV_NAMES: ReadonlySet<string> = new Set([
  'PATH',
  'HOME',
  'SHELL',
  'USER',
  'LOGNAME',
  'IFS',
  'ENV',
  'BASH_ENV',
  // Read by the root bash and setpriv that start every task (agent/only-stdio.ts):
  // a relative LANGUAGE points their message catalogs anywhere.
  'LANG',
  'LANGUAGE',
  'TZ',
  'CDPATH',
  'GLOBIGNORE',
  'PROMPT_COMMAND',
  'PS4',
  'SHELLOPTS',
  'BASHOPTS',
  'TMPDIR',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PYTHONINSPECT',
  'PYTHONUSERBASE',
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_EXTRA_CA_CERTS',
  'PERL5LIB',
  'PERL5OPT',
  'PERLLIB',
  'RUBYLIB',
  'RUBYOPT',
  'PSQLRC',
  'PGSERVICEFILE',
  'PGPASSFILE',
  'PGSYSCONFDIR',
  'MYSQL_HOME',
  'MYSQL_PWD',
  'GCONV_PATH',
  'LOCPATH',
  'NLSPATH',
  'HOSTALIASES',
  'RESOLV_HOST_CONF',
  'MALLOC_CHECK_',
  'TERMINFO',
  'TERMINFO_DIRS',
  'PYTHONWARNINGS',
  'OPENSSL_CONF',
  'OPENSSL_MODULES',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'CURL_CA_BUNDLE',
  'REQUESTS_CA_BUNDLE',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'PGOPTIONS',
  'PGSERVICE',
  'MYSQL_UNIX_PORT',
  'MYSQL_TEST_LOGIN_FILE',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'ALL_PROXY',
  'NO_PROXY',
]);

/** Prefixes of names with the same effect (the dynamic linker's LD_*, bash's own BASH_* and exported functions, the locale's LC_*, git's settings). */
const RESERVED_PREFIXES = ['LD_', 'DYLD_', 'BASH_', 'LC_', 'TASKGATE_', 'GIT_'] as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/**
 * Why `name` cannot be a task's secret variable, or null when it can. The
 * reason names the variable and says what to do.
 */
export function secretNameProblem(name: string): string | null {
  if (!ENV_NAME.test(name)) {
    return `"${name}" is not an environment variable name (letters, digits and '_', not starting with a digit, at most 128)`;
  }
  const upper = name.toUpperCase();
  if (RESERVED_ENV_NAMES.has(upper) || RESERVED_PREFIXES.some((p) => upper.startsWith(p))) {
    return `"${name}" would change how the task's interpreter runs or pose as Taskgate's own settings; map the secret to another name`;
  }
  return null;
}
