/**
 * The one health-check runner, for deployments (`actions.<name>.health`) and
 * staggered runs (`stagger.health`): a command that exits 0, or an HTTP URL
 * that answers the expected status. Tried up to `retries` times, `delay` apart,
 * because a restarted service needs a moment. Never sudo, never a shell.
 * Not a layer of its own: the rollback layer (exec/rollback.ts) calls it between
 * the steps and the rollback, and its argv form runs through the steps layer.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HealthCheckConfig } from '../config/schema.js';
import { formatDuration } from '../core/duration.js';
import type { HealthResult, HealthTry } from '../core/result.js';
import { executeJob, type ExecOptions } from './steps.js';
import { httpRequest } from './http-request.js';

/** Kept of a try's output or body: enough to see why it failed, small enough for a retained result. */
const OUTPUT_CHARS = 500;

interface Try {
  passed: boolean;
  exit_code: number;
  http_status?: number;
  output: string;
}

export async function runHealthCheck(health: HealthCheckConfig, opts: ExecOptions): Promise<HealthResult> {
  const tries: HealthTry[] = [];
  let last: Try = { passed: false, exit_code: -1, output: '' };
  for (let attempt = 1; attempt <= health.retries; attempt++) {
    if (opts.signal?.aborted) break;
    const t0 = performance.now();
    last = health.http
      ? await httpTry(health.http, health.timeout, opts.signal)
      : await argvTry(health.argv ?? [], health.timeout, opts);
    const entry: HealthTry = {
      attempt,
      passed: last.passed,
      exit_code: last.exit_code,
      duration_ms: Math.round(performance.now() - t0),
    };
    if (last.http_status !== undefined) entry.http_status = last.http_status;
    tries.push(entry);
    if (last.passed || attempt === health.retries) break;
    try {
      await sleep(health.delay, undefined, { signal: opts.signal });
    } catch {
      break; // the agent is stopping: no more tries
    }
  }
  const result: HealthResult = {
    passed: last.passed,
    attempts: tries.length,
    exit_code: last.exit_code,
    output: last.output,
  };
  if (last.http_status !== undefined) result.http_status = last.http_status;
  result.tries = tries;
  return result;
}

/** What a failed check says, for the result's `error`. */
export function describeHealth(health: HealthResult): string {
  const what =
    health.http_status !== undefined
      ? `HTTP ${health.http_status}`
      : health.exit_code >= 0
        ? `exit ${health.exit_code}`
        : health.output.split('\n')[0] || 'no answer';
  return `the health check failed ${health.attempts} time(s) (last: ${what})`;
}

async function argvTry(argv: string[], timeoutMs: number, opts: ExecOptions): Promise<Try> {
  const out = await executeJob(
    {
      action: 'health',
      params: {},
      commands: [argv],
      sudo: false,
      timeoutMs,
      actionTimeoutMs: timeoutMs,
      env: {},
      limits: undefined,
    },
    opts,
  );
  return {
    passed: out.status === 'succeeded',
    exit_code: out.exit_code,
    output: `${out.stdout}${out.stderr}`.slice(0, OUTPUT_CHARS),
  };
}

/** No child process: the agent's HTTP client (exec/http-request.ts), which does not follow redirects. */
async function httpTry(
  http: NonNullable<HealthCheckConfig['http']>,
  timeoutMs: number,
  stop: AbortSignal | undefined,
): Promise<Try> {
  // One signal for "out of time" and "the agent is stopping" (AbortSignal.any needs Node 20.3; engines allow 20.0).
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort();
  }, timeoutMs);
  const onStop = () => ctl.abort();
  if (stop?.aborted) onStop();
  stop?.addEventListener('abort', onStop, { once: true });
  try {
    const answer = await httpRequest({
      url: http.url,
      headers: { 'user-agent': 'homelab-cmd health check' },
      maxBody: OUTPUT_CHARS,
      signal: ctl.signal,
    });
    if (answer.kind !== 'answer') {
      const why = timedOut
        ? `no answer within ${formatDuration(timeoutMs)}`
        : stop?.aborted
          ? 'the agent stopped'
          : answer.kind === 'error'
            ? (answer.code ?? answer.message)
            : 'aborted';
      return { passed: false, exit_code: -1, output: `${http.url}: ${why}`.slice(0, OUTPUT_CHARS) };
    }
    const body = answer.body.toString('utf8').slice(0, OUTPUT_CHARS);
    const passed = answer.status === http.status;
    return {
      passed,
      exit_code: passed ? 0 : -1,
      http_status: answer.status,
      output: passed
        ? body
        : `expected HTTP ${http.status}, got ${answer.status}: ${body}`.slice(0, OUTPUT_CHARS),
    };
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}
