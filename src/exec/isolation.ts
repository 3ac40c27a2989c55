/**
 * What the agent finds at start about who runs its commands and how they are
 * contained: the run user (`execution.run_as`), whether it is root itself,
 * systemd (transient scopes) and PID namespaces. docs/security.md
 * § Commands run as another user, § Limits.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { HomelabError } from '../errors.js';
import { resolveExecutable } from './sudo.js';
import type { Isolation, RunAs } from './wrap.js';

/** The run user the agent looks for when the config names none. */
export const DEFAULT_RUN_AS = 'homelab-cmd-run';

const FIX = `create it: sudo useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${DEFAULT_RUN_AS} (docs/install.md § 2)`;

export interface IsolationReport {
  isolation: Isolation;
  /**
   * The run user as looked up (`isolation.runAs`), with its groups, which the private-file checks need:
   * one lookup per start.
   */
  runUser: RunUser | undefined;
  /** Said loudly at start: each is something the operator should fix. */
  warnings: string[];
}

/**
 * `runAs`: execution.run_as as configured (undefined: the default user, if it exists; false: none).
 * Throws when a configured user is missing, or is the agent's own user or root.
 */
export function detectIsolation(
  runAs: string | false | undefined,
  searchPath: string,
  /** Some command may run without sudo: only then is a missing default user worth a warning. */
  needed = true,
): IsolationReport {
  const root = process.getuid?.() === 0;
  const systemd = systemdAvailable(searchPath);
  const warnings: string[] = [];
  let user: RunUser | undefined;
  if (runAs === false && needed) {
    warnings.push(
      "execution.run_as is false: commands without sudo run as the agent's own user and can read its config, secrets and state — set execution.run_as to a user of their own",
    );
  } else if (runAs !== false) {
    const name = runAs ?? DEFAULT_RUN_AS;
    user = lookupUser(name);
    if (!user && runAs !== undefined)
      throw new HomelabError(
        'config',
        `execution.run_as: user "${name}" does not exist on this host — ${FIX.replace(DEFAULT_RUN_AS, name)}, or set execution.run_as to an existing unprivileged user`,
      );
    if (!user && needed)
      warnings.push(
        `the run user ${DEFAULT_RUN_AS} does not exist, so commands without sudo run as the agent's own user and can read its config, secrets and state — ${FIX}, or set execution.run_as: false to accept this`,
      );
    if (user && (user.uid === 0 || user.uid === process.getuid?.()))
      throw new HomelabError(
        'config',
        `execution.run_as: "${name}" is ${user.uid === 0 ? 'root' : "the agent's own user"}, which separates nothing — name an unprivileged user of its own (${DEFAULT_RUN_AS})`,
      );
  }
  const pidns = root && !systemd && user !== undefined && pidNamespaceWorks(user, searchPath);
  return { isolation: { runAs: user, root, systemd, pidns }, warnings, runUser: user };
}

/** The host runs systemd (it is PID 1, as sd_booted(3) checks) and systemd-run is on the PATH. */
export function systemdAvailable(searchPath: string): boolean {
  try {
    return (
      existsSync('/run/systemd/system') &&
      readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd' &&
      resolveExecutable('systemd-run', searchPath) !== undefined
    );
  } catch {
    return false;
  }
}

export type RunUser = RunAs & { groups: number[] };

/** A user by name, through NSS (getent), so LDAP and sssd users count too. */
export function lookupUser(name: string): RunUser | undefined {
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name)) return undefined;
  const pw = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const fields = pw.status === 0 ? pw.stdout.trim().split(':') : [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (fields[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  const ids = spawnSync('id', ['-G', name], { encoding: 'utf8' });
  const groups = ids.status === 0 ? ids.stdout.trim().split(/\s+/).map(Number) : [gid];
  return { name, uid, gid, groups: groups.filter((g) => Number.isInteger(g)) };
}

/** One real try: a PID namespace needs root and CAP_SYS_ADMIN, which a container may not give. */
function pidNamespaceWorks(user: RunAs, searchPath: string): boolean {
  const [unshare, setpriv, truth] = ['unshare', 'setpriv', 'true'].map((x) =>
    resolveExecutable(x, searchPath),
  );
  if (!unshare || !setpriv || !truth) return false;
  const drop = [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups'];
  const r = spawnSync(unshare, ['--pid', '--fork', '--kill-child', '--', setpriv, ...drop, '--', truth], {
    stdio: 'ignore',
    cwd: '/',
    timeout: 5000,
  });
  return r.status === 0;
}
