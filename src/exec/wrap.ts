/**
 * How one resolved command is started: as root through sudo, or as the
 * unprivileged run user (docs/security.md § Commands run as another user),
 * inside a transient systemd scope where there is one, else in a PID
 * namespace where the agent can make one. A pure function of its inputs, so
 * the sudoers lines (cli/sudoers.ts) are built from exactly the argv the agent
 * spawns, and the cases are tested as a table.
 */
import { SUDO_KILL_AFTER, sudoArgv, sudoInner } from './sudo.js';

export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** What the agent found about itself and its host at start (exec/isolation.ts). */
export interface Isolation {
  /** Non-sudo commands run as this user; undefined: as the agent's own user (a warning said so at start). */
  runAs?: RunAs | undefined;
  /** The agent runs as root: it switches users itself, without sudo. */
  root: boolean;
  /** PID 1 is systemd and systemd-run exists: every command runs in its own transient scope. */
  systemd: boolean;
  /** `unshare --pid` works (root, no systemd): a run user's command and all it started die together. */
  pidns: boolean;
}

export interface Tools {
  sudo: string;
  timeout: string;
  env: string;
  systemdRun: string;
  unshare: string;
  setpriv: string;
}

export interface WrapInput {
  sudo: boolean;
  actionTimeoutMs: number;
  /** limits.processes: the scope's TasksMax. */
  processes?: number | undefined;
  /** The child's whole environment; it must survive sudo's env_reset on the way to the run user. */
  env: Record<string, string>;
}

export interface Wrapped {
  argv: string[];
  /** Spawn with this uid/gid (node clears the supplementary groups). */
  uid?: number;
  gid?: number;
  /** The private working directory must be given to this user (the agent is root and can). */
  workDirOwner?: { uid: number; gid: number };
  /** `/` instead of a private directory the command's user could not enter (the agent cannot chown). */
  rootCwd?: boolean;
  /** sudo starts it: sudo's own refusals are told apart from the command's failures. */
  viaSudo?: boolean;
}

/** The slack the scope's own deadline gives `timeout` before systemd stops everything in it. */
const SCOPE_SLACK_S = 10;

/** systemd-run options for a command's transient scope: a task limit, and a deadline after which systemd kills it all. */
export function scopeArgs(input: Pick<WrapInput, 'actionTimeoutMs' | 'processes'>, tools: Tools): string[] {
  const max = Math.ceil(input.actionTimeoutMs / 1000) + Number.parseInt(SUDO_KILL_AFTER, 10) + SCOPE_SLACK_S;
  return [
    tools.systemdRun,
    '--scope',
    '--quiet',
    '--collect',
    ...(input.processes !== undefined ? ['-p', `TasksMax=${input.processes}`] : []),
    '-p',
    `RuntimeMaxSec=${max}s`,
    '--',
  ];
}

function dropTo(user: RunAs, tools: Tools): string[] {
  return [tools.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--'];
}

/**
 * `command`: `[prlimit … --] /abs/exe args` (the executable resolved, for sudo and setpriv).
 * The cases, by who runs the agent and what the host has: docs/security.md § Commands run as another user.
 */
export function wrapCommand(
  command: readonly string[],
  input: WrapInput,
  iso: Isolation,
  tools: Tools,
): Wrapped {
  const scope = iso.systemd ? scopeArgs(input, tools) : [];
  if (input.sudo) {
    return {
      argv: sudoArgv(tools.sudo, [...scope, ...sudoInner(command, input.actionTimeoutMs, tools.timeout)]),
      viaSudo: true,
    };
  }
  const user = iso.runAs;
  if (!user) return { argv: [...(iso.root ? scope : []), ...command] };
  const owner = { uid: user.uid, gid: user.gid };
  if (iso.root) {
    if (iso.systemd) return { argv: [...scope, ...dropTo(user, tools), ...command], workDirOwner: owner };
    if (iso.pidns)
      return {
        argv: [tools.unshare, '--pid', '--fork', '--kill-child', '--', ...dropTo(user, tools), ...command],
        workDirOwner: owner,
      };
    return { argv: [...command], uid: user.uid, gid: user.gid, workDirOwner: owner };
  }
  // An unprivileged agent needs sudo to become anyone else; `timeout` inside, as for sudo actions,
  // because the agent may not signal the run user's processes. sudo resets the environment: env -i
  // gives the command exactly the environment it would have had.
  const inner = [
    tools.env,
    '-i',
    ...Object.entries(input.env).map(([k, v]) => `${k}=${v}`),
    ...sudoInner(command, input.actionTimeoutMs, tools.timeout),
  ];
  if (iso.systemd)
    // Only root may create a system scope: sudo to root, the scope, then down to the run user.
    return {
      argv: sudoArgv(tools.sudo, [...scope, ...dropTo(user, tools), ...inner]),
      rootCwd: true,
      viaSudo: true,
    };
  return { argv: [tools.sudo, '-n', '-u', user.name, '--', ...inner], rootCwd: true, viaSudo: true };
}
