/**
 * Layer 3 of 4 (retry → rollback → steps → spawn): what it adds over the steps layer
 * (exec/steps.ts) is the deployment — after the steps, the health check (exec/health.ts), and the
 * rollback when either failed (docs/configuration.md § Deployments); a job with neither `health`
 * nor `rollback` passes straight through to the steps. The rollback gets its own budget of the
 * action's full timeout, so a deployment that ran out of time still rolls back. An agent that is
 * stopping never starts a rollback; a cancel request (exec/stop-reason.ts) kills the steps or the
 * health check and does start it: under the stop signal alone, so a cancel never cuts a rollback
 * short (docs/mqtt-api.md § Cancel).
 */
import type { Job } from '../core/resolve.js';
import type { Result, RollbackResult, StepResult } from '../core/result.js';
import { cutToBytes } from './capture.js';
import { executeJob, type ExecOptions, type ExecOutcome } from './steps.js';
import { describeHealth, runHealthCheck } from './health.js';
import { cancelRequested } from './stop-reason.js';

export type JobOutcome = ExecOutcome & Pick<Result, 'health' | 'rollback' | 'attempts'>;

export interface RunOptions extends ExecOptions {
  /** Aborted by the agent's stop only (`signal` also by a cancel): what a rollback runs under. */
  stopSignal?: AbortSignal | undefined;
}

export async function runDeployment(job: Job, opts: RunOptions): Promise<JobOutcome> {
  const t0 = performance.now();
  const main = await executeJob(job, opts);
  if (!job.health && !job.rollback) return main;

  // A deployment lists every step, even a single argv: the reader must see what ran before the rollback.
  const outcome: JobOutcome = { ...main, steps: stepsOf(main, job.commands) };
  let cause = `the deployment failed (${main.error ?? main.status})`;
  if (main.status === 'succeeded' && job.health) {
    const health = await runHealthCheck(job.health, opts);
    outcome.health = health;
    if (!health.passed) {
      if (opts.signal?.aborted && !cancelRequested(opts.signal))
        return interrupted(
          finish(outcome, t0),
          'the agent stopped during the health check; the deployment was not rolled back — check the host',
        );
      cause = `the steps succeeded but ${describeHealth(health)}`;
      outcome.status = 'failed';
      outcome.error_code = 'exit_nonzero';
      outcome.error = job.rollback
        ? cause
        : `${cause} — no rollback is configured: check the service by hand`;
    }
  }
  if (outcome.status === 'interrupted' && !cancelRequested(opts.signal))
    return interrupted(
      finish(outcome, t0),
      `${outcome.error ?? 'the agent stopped'}; the deployment was not rolled back`,
    );
  if (outcome.status === 'succeeded' || !job.rollback) return finish(outcome, t0);

  // The rollback's own budget: the action's timeout (not what is left, nor the request's shorter one).
  const rb = await executeJob(
    { ...job, commands: job.rollback, timeoutMs: job.actionTimeoutMs },
    { ...opts, signal: opts.stopSignal ?? opts.signal, onStep: undefined },
  );
  // Under the stop signal a rollback can end interrupted, never cancelled.
  const rbStatus = rb.status === 'cancelled' ? 'interrupted' : rb.status;
  const rollback: RollbackResult = { status: rbStatus, steps: stepsOf(rb, job.rollback) };
  outcome.rollback = rollback;
  appendOutput(outcome, rb, opts.maxOutput);
  outcome.completed_at = rb.completed_at;
  if (rb.status === 'succeeded') {
    outcome.error_code = 'rolled_back';
    outcome.error = `${cause}; the rollback ran and succeeded, so the previous state is back — fix the cause before deploying again`;
  } else if (rbStatus === 'interrupted') {
    return interrupted(
      finish(outcome, t0),
      `${cause}; the agent stopped during the rollback — check the host by hand`,
    );
  } else {
    outcome.error_code = 'rollback_failed';
    outcome.error = `${cause}, and the rollback failed too (${rb.error ?? rb.status}) — the host may be half-deployed: check it by hand now`;
  }
  return finish(outcome, t0);
}

/** Steps as the result lists them; executeJob lists them only for multi-step jobs. */
function stepsOf(out: ExecOutcome, commands: string[][]): StepResult[] {
  if (out.steps) return out.steps;
  const argv = commands[0] ?? [];
  return [{ argv: [...argv], exit_code: out.exit_code, duration_ms: out.duration_ms }];
}

/** The rollback's output follows the deployment's, under the same cap. */
function appendOutput(into: JobOutcome, rb: ExecOutcome, max: number): void {
  for (const stream of ['stdout', 'stderr'] as const) {
    const text = into[stream] + rb[stream];
    const cut = cutToBytes(text, max);
    into[stream] = cut;
    into[`${stream}_truncated`] ||= rb[`${stream}_truncated`] || cut.length !== text.length;
  }
}

function interrupted(outcome: JobOutcome, error: string): JobOutcome {
  // [contract] interrupted: exit_code -1.
  return { ...outcome, status: 'interrupted', exit_code: -1, error_code: 'interrupted', error };
}

/** duration_ms covers steps, health check and rollback: executed_at to completed_at. */
function finish(outcome: JobOutcome, t0: number): JobOutcome {
  outcome.duration_ms = Math.round(performance.now() - t0);
  if (outcome.health || outcome.rollback) outcome.completed_at = new Date().toISOString();
  return outcome;
}
