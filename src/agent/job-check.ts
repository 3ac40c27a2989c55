/**
 * The checks a resolved job passes when it is accepted, and again just before
 * it runs (it may have waited in the queue or for its stagger group): path
 * params resolved on the file system, then the deny-list over every command it
 * can run — steps, rollback and health check.
 */
import type { Config } from '../config/load.js';
import { deniedBy } from '../core/deny.js';
import type { Job } from '../core/resolve.js';
import type { Rejection } from '../core/result.js';
import { canonicalForms } from '../exec/canonical.js';
import { confinePaths } from '../exec/confine.js';

export function checkJob(
  job: Job,
  config: Pick<Config, 'actions' | 'security'>,
): { ok: true; job: Job } | { ok: false; rejection: Rejection } {
  const confined = confinePaths(job, config.actions[job.action]);
  if (!confined.ok) return confined;
  const ready = confined.job;
  for (const argv of jobCommands(ready)) {
    // The second wall: whatever the whitelist allowed, these never run — however the paths are spelled.
    const rule = deniedBy(argv, config.security.deny, canonicalForms(argv));
    if (rule)
      return {
        ok: false,
        rejection: {
          code: 'denied',
          error: `the final command matches the deny-list (${rule}); it is never run — change the action or its params`,
        },
      };
  }
  return { ok: true, job: ready };
}

/** Every argv a job may spawn. */
export function jobCommands(job: Pick<Job, 'commands' | 'rollback' | 'health'>): string[][] {
  return [...job.commands, ...(job.rollback ?? []), ...(job.health?.argv ? [job.health.argv] : [])];
}
