/**
 * sudo: `sudo -n -- timeout --kill-after=5s <action timeout> /abs/exe args…`.
 * sudo relays SIGTERM but the agent cannot SIGKILL a root child, so coreutils
 * `timeout` runs *inside* sudo and kills the command's group as root.
 * The wrapper uses the action's fixed timeout so the sudoers line never varies.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { toSecondsArg } from '../core/duration.js';
import type { Limits } from '../core/resolve.js';

export const SUDO_KILL_AFTER = '5s';

/** The absolute path of an executable on a PATH string, as the child would find it. */
export function resolveExecutable(file: string, searchPath: string): string | undefined {
  if (file.includes('/')) return isExecutable(file) ? file : undefined;
  for (const dir of searchPath.split(':')) {
    if (dir === '') continue;
    const candidate = path.join(dir, file);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** util-linux prlimit options for the limits that are set (each sets soft and hard). */
export function prlimitFlags(l: Limits): string[] {
  const f: string[] = [];
  if (l.memory !== undefined) f.push(`--as=${l.memory}`);
  if (l.cpu !== undefined) f.push(`--cpu=${Math.max(1, Math.ceil(l.cpu / 1000))}`);
  if (l.processes !== undefined) f.push(`--nproc=${l.processes}`);
  if (l.file_size !== undefined) f.push(`--fsize=${l.file_size}`);
  if (l.open_files !== undefined) f.push(`--nofile=${l.open_files}`);
  return f;
}

/** The argv that sudo runs (what a sudoers rule must allow), for an already-resolved command. */
export function sudoInner(absArgv: readonly string[], actionTimeoutMs: number, timeoutExe: string): string[] {
  return [timeoutExe, `--kill-after=${SUDO_KILL_AFTER}`, toSecondsArg(actionTimeoutMs), ...absArgv];
}

export function sudoArgv(sudoExe: string, inner: readonly string[]): string[] {
  return [sudoExe, '-n', '--', ...inner];
}

/** sudo's own refusals (exit 1, "sudo: …" on stderr), as opposed to the command failing. */
export function isSudoRefusal(exitCode: number, stderr: string): boolean {
  return (
    exitCode === 1 &&
    /^sudo: /m.test(stderr) &&
    /password|not allowed|sudoers|terminal|tty|askpass|not permitted|unable to|no new privileges|effective uid is not 0/i.test(
      stderr,
    )
  );
}
