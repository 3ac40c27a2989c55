/**
 * A job from the queue to its outcome: checked again (paths, deny-list) now
 * that it is about to run, then run — again after a failure when the action
 * has `retry` (idempotent actions only; docs/configuration.md).
 */
import type { Config } from '../config/load.js';
import type { ActionConfig } from '../config/schema.js';
import type { Job } from '../core/resolve.js';
import type { AttemptResult, Rejection } from '../core/result.js';
import { runDeployment, type JobOutcome, type RunOptions } from '../exec/rollback.js';
import { checkJob } from './job-check.js';

/** The longest wait between attempts, however many doublings the backoff has had. */
export const MAX_BACKOFF_MS = 5 * 60_000;

export async function runJob(
  job: Job,
  config: Pick<Config, 'actions' | 'security'>,
  opts: RunOptions,
): Promise<JobOutcome> {
  const checked = checkJob(job, config);
  if (!checked.ok) return notRun(checked.rejection);
  const ready = checked.job;
  const retry = ready.retry;
  if (!retry) return runDeployment(ready, opts);

  const t0 = performance.now();
  const attempts: AttemptResult[] = [];
  let first: JobOutcome | undefined;
  let last: JobOutcome | undefined;
  for (let n = 1; n <= retry.attempts; n++) {
    last = await runDeployment(ready, opts);
    first ??= last;
    const entry: AttemptResult = {
      attempt: n,
      status: last.status,
      exit_code: last.exit_code,
      duration_ms: last.duration_ms,
    };
    if (last.error_code !== undefined) entry.error_code = last.error_code;
    attempts.push(entry);
    if (n === retry.attempts || !retryable(last)) break;
    const wait = backoffMs(retry.backoffMs, n);
    if (!(await pause(wait, opts.signal))) {
      // After a cancel the run-queue makes it `cancelled` (core/cancel.ts); either way nothing more runs.
      last = {
        ...last,
        error: `${last.error ?? ''} — the agent stopped before attempt ${n + 1} of ${retry.attempts}`,
      };
      break;
    }
  }
  if (!first || !last) throw new Error('runJob: retry.attempts is at least 2');
  // The last attempt's fields, over the whole run's span.
  return {
    ...last,
    executed_at: first.executed_at,
    duration_ms: Math.round(performance.now() - t0),
    attempts,
  };
}

/** Only a run that may pass next time: exit_nonzero or a timeout. Never not_found, sudo_failed, denied … */
export function retryable(outcome: Pick<JobOutcome, 'status' | 'error_code'>): boolean {
  return (
    outcome.status === 'timed_out' || (outcome.status === 'failed' && outcome.error_code === 'exit_nonzero')
  );
}

/** backoff, doubling after each failed attempt: 5s, 10s, 20s … at most MAX_BACKOFF_MS. */
export function backoffMs(base: number, failedAttempts: number): number {
  return Math.min(MAX_BACKOFF_MS, base * 2 ** (failedAttempts - 1));
}

/** false when the agent began stopping during the wait. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A job whose re-check failed just before it would have run: nothing ran. */
function notRun(rejection: Rejection): JobOutcome {
  const now = new Date().toISOString();
  return {
    status: 'failed',
    exit_code: -1,
    stdout: '',
    stderr: '',
    stdout_truncated: false,
    stderr_truncated: false,
    executed_at: now,
    completed_at: now,
    duration_ms: 0,
    error_code: rejection.code,
    // It passed these checks when accepted: something on the host (a symlink, a file) changed since.
    error: `not run: checked again just before it would start, ${rejection.error}`,
  };
}

/** An action's stagger settings; a deployment's `health` gates its group like `stagger.health` would. */
export function staggerOf(action: ActionConfig | undefined): ActionConfig['stagger'] {
  if (!action?.stagger) return undefined;
  return action.health && !action.stagger.health
    ? { ...action.stagger, health: action.health }
    : action.stagger;
}
