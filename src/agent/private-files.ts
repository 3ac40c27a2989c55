/**
 * At start: the files that hold the agent's secrets, and its state_dir, must
 * be out of reach of the run user its commands run as (docs/security.md
 * § Commands run as another user). state_dir is the agent's own: it is made
 * 0700. Secret files belong to the operator: a loud warning says what to fix.
 */
import { chmodSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/load.js';
import { detectIsolation } from '../exec/isolation.js';
import type { Isolation } from '../exec/wrap.js';
import type { Logger } from '../log.js';

export interface Reader {
  uid: number;
  groups: readonly number[];
}

/** The warnings for `config`; `runUser`: the run user and its groups, when there is one. */
export function privateFileWarnings(config: Config, runUser: Reader | undefined): string[] {
  const dir = path.dirname(path.resolve(config.source));
  const files: [string, string | undefined][] = [
    ['the config', config.source],
    ['mqtt.password_file', config.mqtt.password_file],
    ['mqtt.key_file', config.mqtt.key_file],
    ['security.key_file', config.security.key_file],
  ];
  const out: string[] = [];
  for (const [what, file] of files) {
    if (file === undefined) continue;
    // A config that holds no secret of its own may be read by anyone (the package's example is).
    if (file === config.source && !holdsSecret(config)) continue;
    const abs = path.resolve(dir, file);
    let st;
    try {
      st = statSync(abs);
    } catch {
      continue; // not on disk (a test's in-memory config): nothing to check
    }
    const mode = `0${(st.mode & 0o777).toString(8)}`;
    if (runUser && st.uid === runUser.uid)
      out.push(
        `${what} ${abs} is owned by the run user (uid ${st.uid}), so every command can read and change it — chown root:<the agent's group> ${abs}`,
      );
    else if (st.mode & 0o004)
      out.push(`${what} ${abs} is readable by every user on this host (mode ${mode}) — chmod o-rwx ${abs}`);
    else if (runUser && st.mode & 0o040 && runUser.groups.includes(st.gid))
      out.push(
        `${what} ${abs} is readable by its group (gid ${st.gid}, mode ${mode}), and the run user is in it — chmod g-r ${abs}, or take the run user out of that group`,
      );
  }
  return out;
}

/** A password written in the config itself, rather than in a `*_file` beside it. */
function holdsSecret(config: Config): boolean {
  return (
    (config.mqtt.password !== undefined && config.mqtt.password_file === undefined) ||
    config.broker.users.some((u) => u.password !== undefined && u.password_file === undefined) ||
    (config.broker.cluster?.password !== undefined && config.broker.cluster.password_file === undefined)
  );
}

/** state_dir: 0700 and the agent's, so no command can read the audit log or forge a journal line. */
export function privateStateDir(stateDir: string): string | undefined {
  let st;
  try {
    st = statSync(stateDir);
  } catch {
    return undefined; // the journal creates it with mode 0700
  }
  const me = process.getuid?.();
  if (me !== undefined && st.uid !== me)
    return `state_dir ${stateDir} belongs to uid ${st.uid}, not to the agent (uid ${me}): whoever owns it can forge the journal — chown it to the agent's user`;
  if ((st.mode & 0o077) !== 0) chmodSync(stateDir, 0o700);
  return undefined;
}

/**
 * Everything the start-up checks: who runs the commands (exec/isolation.ts), then state_dir and the
 * secret files against that user. Throws on a config error; logs each warning.
 */
export function isolationAtStart(config: Config, log: Logger, demo = false): Isolation {
  const needed =
    (config.execution.enabled &&
      Object.values(config.actions).some(
        (a) => !(a.sudo ?? config.execution.sudo) || a.health?.argv !== undefined,
      )) ||
    // Command probes run whether or not execution is enabled (docs/configuration.md § command).
    Object.values(config.probes).some((p) => p.type === 'command' && !(p.sudo ?? config.execution.sudo));
  const { isolation, warnings, runUser } = detectIsolation(
    config.execution.run_as,
    config.execution.path,
    needed,
  );
  const state = privateStateDir(config.state_dir);
  for (const w of [...warnings, ...(state ? [state] : []), ...privateFileWarnings(config, runUser)])
    if (demo) log.info(w);
    else log.warn(w);
  log.info(
    {
      run_as: isolation.runAs?.name ?? null,
      scope: isolation.systemd ? 'systemd' : isolation.pidns ? 'pid namespace' : 'process group',
    },
    isolation.runAs
      ? 'commands without sudo run as the run user'
      : "commands without sudo run as the agent's own user",
  );
  return isolation;
}
