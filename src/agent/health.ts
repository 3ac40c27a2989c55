/**
 * The health check of a staggered run (`stagger.health`): tried up to
 * `retries` times, `delay` apart, because a restarted service needs a moment.
 */
import type { HealthResult } from '../core/result.js';
import { executeJob, type ExecOptions } from '../exec/execute.js';
import type { StaggerConfig } from './stagger.js';

export async function runHealthCheck(health: NonNullable<StaggerConfig['health']>, opts: ExecOptions): Promise<HealthResult> {
  let last = { exit_code: -1, output: '' };
  for (let attempt = 1; attempt <= health.retries; attempt++) {
    if (opts.signal?.aborted) break;
    const out = await executeJob({ action: 'health', params: {}, commands: [health.argv], sudo: false, timeoutMs: health.timeout, actionTimeoutMs: health.timeout, env: {}, limits: undefined }, opts);
    last = { exit_code: out.exit_code, output: `${out.stdout}${out.stderr}`.slice(0, 500) };
    if (out.status === 'succeeded') return { passed: true, attempts: attempt, ...last };
    if (attempt < health.retries) await new Promise((resolve) => setTimeout(resolve, health.delay));
  }
  return { passed: false, attempts: health.retries, ...last };
}
