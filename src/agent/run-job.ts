/**
 * A job from the queue to its outcome: checked again (paths, deny-list) now
 * that it is about to run, then handed to the top of the execution stack,
 * exec/retry.ts (retry → rollback → steps → spawn). The re-check (job-check.ts)
 * stays here, above the stack: it needs the agent's config (the action's path
 * params, security.deny), and a job that fails it never reaches exec/ at all.
 */
import type { Config } from '../config/load.js';
import type { ActionConfig } from '../config/schema.js';
import type { Job } from '../core/resolve.js';
import type { Rejection } from '../core/result.js';
import type { JobOutcome, RunOptions } from '../exec/rollback.js';
import { runWithRetry } from '../exec/retry.js';
import { checkJob } from './job-check.js';

export async function runJob(
  job: Job,
  config: Pick<Config, 'actions' | 'security'>,
  opts: RunOptions,
): Promise<JobOutcome> {
  const checked = checkJob(job, config);
  if (!checked.ok) return notRun(checked.rejection);
  return runWithRetry(checked.job, opts);
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
