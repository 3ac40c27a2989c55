/**
 * Layer 4 of 4 (retry → rollback → steps → spawn), the top: what it adds over the rollback layer
 * (exec/rollback.ts) is running the whole thing again after a failure, when the action has `retry`
 * — idempotent actions only, only after a failure another try may cure, with a doubling backoff
 * (docs/configuration.md § Retry). The job reaching here was checked again just before it runs
 * (agent/run-job.ts); without `retry` this layer is one call of the rollback layer.
 */
import type { Job } from '../core/resolve.js';
import type { AttemptResult } from '../core/result.js';
import { runDeployment, type JobOutcome, type RunOptions } from './rollback.js';

/** The longest wait between attempts, however many doublings the backoff has had. */
export const MAX_BACKOFF_MS = 5 * 60_000;

export async function runWithRetry(ready: Job, opts: RunOptions): Promise<JobOutcome> {
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
  if (!first || !last) throw new Error('runWithRetry: retry.attempts is at least 2');
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
