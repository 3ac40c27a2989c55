/**
 * Layer 2 of 4 (retry → rollback → steps → spawn): what it adds over the spawn layer (one argv,
 * exec/spawn.ts) is a whole resolved job → the result fields of its run: its commands in order
 * under the job's one timeout, stopping at the first failure, each wrapped for sudo, the run user
 * and confinement (exec/wrap.ts; docs/security.md § Commands run as another user), and the mapping
 * of what happened to the contract's statuses and error codes (docs/mqtt-api.md § Statuses,
 * § Error codes).
 */
import type { Job } from '../core/resolve.js';
import type { ErrorCode, Result, ResultStatus, StepResult } from '../core/result.js';
import { formatDuration } from '../core/duration.js';
import { cutToBytes } from './capture.js';
import { runCommand, type RunOutcome } from './spawn.js';
import { isSudoRefusal, prlimitFlags, resolveExecutable } from './sudo.js';
import type { WorkDirs } from './work-dirs.js';
import { wrapCommand, type Isolation, type Tools, type Wrapped } from './wrap.js';

/** Everything as the agent's own user, no scope: what a caller that checked nothing gets. */
export const NO_ISOLATION: Isolation = { root: false, systemd: false, pidns: false };

/** The fixed PATH a child gets (the contract: nothing inherited from the agent). */
export const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ExecOptions {
  path: string;
  maxOutput: number;
  killGraceMs?: number;
  signal?: AbortSignal;
  onOutput?: ((stream: 'stdout' | 'stderr', chunk: Buffer) => void) | undefined;
  /** Step k (from 1) of `count` commands is about to start (the Running sensor: agent/running.ts). */
  onStep?: ((k: number, count: number) => void) | undefined;
  /** Each command's pid (its process group) as it is spawned. */
  onSpawn?: ((pid: number) => void) | undefined;
  /** Who runs the commands and how they are contained (exec/isolation.ts); default NO_ISOLATION. */
  isolation?: Isolation | undefined;
  /** Private working directories made ahead (work-dirs.ts). */
  workDirs?: WorkDirs | undefined;
}

/** The result fields a run fills in; the pipeline adds id, host, action and transaction. */
export type ExecOutcome = Required<
  Pick<
    Result,
    | 'exit_code'
    | 'stdout'
    | 'stderr'
    | 'stdout_truncated'
    | 'stderr_truncated'
    | 'executed_at'
    | 'completed_at'
    | 'duration_ms'
  >
> &
  Pick<Result, 'error_code' | 'error' | 'steps'> & {
    status: Exclude<ResultStatus, 'running' | 'scheduled' | 'rebooting' | 'rejected'>;
  };

export function childEnv(job: Pick<Job, 'env'>, searchPath: string): Record<string, string> {
  return { PATH: searchPath, LANG: 'C.UTF-8', ...job.env };
}

/**
 * The exact argv that will be spawned for one command of a job, and as whom, or why it cannot be:
 * `[prlimit … --] exe args` wrapped by exec/wrap.ts (sudo, the run user, a scope). The sudoers lines
 * are built from it too.
 */
export function spawnArgv(
  argv: readonly string[],
  job: Pick<Job, 'sudo' | 'actionTimeoutMs' | 'limits' | 'env'>,
  searchPath: string,
  iso: Isolation = NO_ISOLATION,
): Wrapped | { code: ErrorCode; error: string } {
  const exe = argv[0] ?? '';
  const flags = job.limits ? prlimitFlags(job.limits) : [];
  let limit: string[] = [];
  if (flags.length > 0) {
    const prlimit = resolveExecutable('prlimit', searchPath);
    if (!prlimit)
      return {
        code: 'not_found',
        error: `the action sets limits, which need prlimit from util-linux, and it is not on ${searchPath} — install util-linux, or remove the limits`,
      };
    limit = [prlimit, ...flags, '--'];
  }
  if (!job.sudo && !iso.runAs && !(iso.systemd && iso.root)) return { argv: [...limit, ...argv] };
  const abs = resolveExecutable(exe, searchPath);
  if (!abs)
    return {
      code: 'not_found',
      error: `${exe} was not found on the agent's PATH (${searchPath}) — ${notFoundFix(exe)}`,
    };
  const tools = resolveTools(job.sudo || (iso.runAs !== undefined && !iso.root), iso, searchPath);
  if ('code' in tools) return tools;
  const input = {
    sudo: job.sudo,
    actionTimeoutMs: job.actionTimeoutMs,
    processes: job.limits?.processes,
    env: childEnv(job, searchPath),
  };
  return wrapCommand([...limit, abs, ...argv.slice(1)], input, iso, tools);
}

function resolveTools(
  viaSudo: boolean,
  iso: Isolation,
  searchPath: string,
): Tools | { code: ErrorCode; error: string } {
  const find = (name: string) => resolveExecutable(name, searchPath) ?? '';
  const tools: Tools = {
    sudo: find('sudo'),
    timeout: find('timeout'),
    env: find('env'),
    systemdRun: iso.systemd ? find('systemd-run') : '',
    unshare: iso.pidns ? find('unshare') : '',
    setpriv: iso.runAs && (iso.systemd || iso.pidns) ? find('setpriv') : '',
  };
  if (viaSudo && !tools.sudo)
    return {
      code: 'sudo_failed',
      error:
        'the action runs through sudo (as root, or as execution.run_as), but sudo is not installed on this host — install it and add the lines from `homelab-cmd sudoers --config <file>`',
    };
  if (viaSudo && (!tools.timeout || !tools.env))
    return {
      code: 'sudo_failed',
      error: 'commands run through sudo need coreutils `timeout` and `env` to bound them — install coreutils',
    };
  for (const [need, name] of [
    [iso.systemd, 'systemd-run'],
    [iso.pidns, 'unshare'],
    [iso.runAs && (iso.systemd || iso.pidns), 'setpriv'],
  ] as const) {
    if (need && !find(name))
      return {
        code: 'not_found',
        error: `${name} is not on execution.path (${searchPath}), but the agent found it at start — put it back (util-linux, systemd)`,
      };
  }
  return tools;
}

export async function executeJob(job: Job, opts: ExecOptions): Promise<ExecOutcome> {
  const startedAt = new Date();
  const t0 = performance.now();
  const deadline = t0 + job.timeoutMs;
  const steps: StepResult[] = [];
  const out: string[] = [];
  const err: string[] = [];
  let outTrunc = false;
  let errTrunc = false;
  let last: { status: ExecOutcome['status']; exit_code: number; error_code?: ErrorCode; error?: string } = {
    status: 'succeeded',
    exit_code: 0,
  };

  for (const [i, argv] of job.commands.entries()) {
    opts.onStep?.(i + 1, job.commands.length);
    const spawn = spawnArgv(argv, job, opts.path, opts.isolation);
    if ('code' in spawn) {
      last = {
        status: 'failed',
        exit_code: spawn.code === 'not_found' ? 127 : -1,
        error_code: spawn.code,
        error: spawn.error,
      };
      if (job.commands.length > 1) steps.push({ argv: [...argv], exit_code: last.exit_code, duration_ms: 0 });
      break;
    }
    const remaining = Math.max(1, Math.round(deadline - performance.now()));
    const run = await runCommand({
      argv: spawn.argv,
      uid: spawn.uid,
      gid: spawn.gid,
      workDirOwner: spawn.workDirOwner,
      rootCwd: spawn.rootCwd,
      workDirs: opts.workDirs,
      env: childEnv(job, opts.path),
      timeoutMs: remaining,
      maxOutput: opts.maxOutput,
      killGraceMs: opts.killGraceMs,
      signal: opts.signal,
      onOutput: opts.onOutput,
      onSpawn: opts.onSpawn,
    });
    out.push(run.stdout.text);
    err.push(run.stderr.text);
    outTrunc ||= run.stdout.truncated;
    errTrunc ||= run.stderr.truncated;
    if (job.commands.length > 1)
      steps.push({ argv: [...argv], exit_code: run.exitCode, duration_ms: run.durationMs });
    last = classify(run, argv, job, spawn.viaSudo === true);
    if (last.status !== 'succeeded') break;
  }

  const stdout = join(out, opts.maxOutput, outTrunc);
  const stderr = join(err, opts.maxOutput, errTrunc);
  const completed = new Date();
  const outcome: ExecOutcome = {
    status: last.status,
    exit_code: last.exit_code,
    stdout: stdout.text,
    stderr: stderr.text,
    stdout_truncated: stdout.truncated,
    stderr_truncated: stderr.truncated,
    executed_at: startedAt.toISOString(),
    completed_at: completed.toISOString(),
    duration_ms: Math.round(performance.now() - t0),
  };
  if (last.error_code) outcome.error_code = last.error_code;
  if (last.error) outcome.error = last.error;
  if (job.commands.length > 1) outcome.steps = steps;
  return outcome;
}

function classify(
  run: RunOutcome,
  argv: readonly string[],
  job: Job,
  viaSudo: boolean,
): { status: ExecOutcome['status']; exit_code: number; error_code?: ErrorCode; error?: string } {
  const exe = argv[0] ?? '';
  switch (run.kind) {
    case 'timed_out':
      return {
        status: 'timed_out',
        exit_code: -1,
        error_code: 'timeout',
        error: `${exe} ran longer than its timeout of ${formatDuration(job.timeoutMs)} and was killed with its whole process group — raise the action's timeout if it needs longer`,
      };
    case 'interrupted':
      return {
        status: 'interrupted',
        exit_code: -1,
        error_code: 'interrupted',
        error:
          'the agent stopped while the command ran; it was killed — check the host before running it again',
      };
    case 'not_found':
      return {
        status: 'failed',
        exit_code: 127,
        error_code: 'not_found',
        error: `${exe} was not found on the agent's PATH — ${notFoundFix(exe)}`,
      };
    case 'spawn_failed':
      return {
        status: 'failed',
        exit_code: -1,
        error_code: 'not_found',
        error: `${exe} could not be started: ${run.error ?? 'unknown error'}`,
      };
    case 'exited':
      if (run.exitCode === 0) return { status: 'succeeded', exit_code: 0 };
      if (viaSudo && isSudoRefusal(run.exitCode, run.stderr.text)) {
        return {
          status: 'failed',
          exit_code: run.exitCode,
          error_code: 'sudo_failed',
          error: `sudo refused to run ${exe} without a password — install the rule printed by \`homelab-cmd sudoers --config <file>\` (sudo said: ${firstLine(run.stderr.text)})`,
        };
      }
      if (viaSudo && run.exitCode === 127 && run.stdout.text === '') {
        return {
          status: 'failed',
          exit_code: 127,
          error_code: 'not_found',
          error: `${exe} was not found when run through sudo — check the action's argv`,
        };
      }
      return {
        status: 'failed',
        exit_code: run.exitCode,
        error_code: 'exit_nonzero',
        error: `${exe} exited with code ${run.exitCode}${run.signal ? ` (signal ${run.signal})` : ''} — see stderr`,
      };
  }
}

function join(parts: string[], max: number, truncated: boolean): { text: string; truncated: boolean } {
  const text = parts.join('');
  const cut = cutToBytes(text, max);
  return { text: cut, truncated: truncated || cut.length !== text.length };
}

function firstLine(s: string): string {
  return (s.split('\n').find((l) => l.trim() !== '') ?? '').slice(0, 200);
}

/** An argv[0] with spaces is a shell line put in one element (docs/configuration.md § argv is not a shell line). */
export function notFoundFix(exe: string): string {
  return /\s/.test(exe)
    ? `it looks like a shell line, but no shell runs it: argv[0] is the program alone — split it into one element per word, e.g. [${exe.trim().split(/\s+/).slice(0, 3).join(', ')}]`
    : "install it or fix the action's argv";
}
