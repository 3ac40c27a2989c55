/**
 * Result objects (CONTRACT.md § Result object), shaped as data with a stable
 * key order so a republished retained result is byte-identical.
 */
export const FINAL_STATUSES = ['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted'] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];
export type ResultStatus = FinalStatus | 'running' | 'scheduled';

export type ErrorCode =
  | 'invalid_request'
  | 'unknown_action'
  | 'invalid_params'
  | 'not_whitelisted'
  | 'execution_disabled'
  | 'busy'
  | 'expired'
  | 'bad_signature'
  | 'replayed'
  | 'retained_ignored'
  | 'timeout'
  | 'not_found'
  | 'sudo_failed'
  | 'denied'
  | 'exit_nonzero'
  | 'interrupted'
  | 'shutting_down'
  // Extensions (deployments, docs/configuration.md § Deployments): a step or the health check failed and the rollback ran.
  | 'rolled_back'
  | 'rollback_failed';

export interface StepResult {
  argv: string[];
  exit_code: number;
  duration_ms: number;
}

export interface Result {
  id: string;
  host: string;
  action: string | null;
  status: ResultStatus;
  exit_code: number;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  error_code?: ErrorCode;
  error?: string;
  executed_at?: string;
  completed_at?: string;
  duration_ms?: number;
  run_at?: string;
  steps?: StepResult[];
  /** Extension: the health check of a deployment or a staggered run (docs/configuration.md § Deployments, docs/stagger.md). */
  health?: HealthResult;
  /** Extension: a deployment's rollback, when it ran. */
  rollback?: RollbackResult;
  /** Extension: each run of an action with `retry`; the result's other fields are the last one's. */
  attempts?: AttemptResult[];
  /** Extension: how a decision was made when that matters (a staggered run decided during an outage). */
  note?: string;
  transaction?: string;
}

export interface HealthResult {
  passed: boolean;
  attempts: number;
  /** Of the last try; for the http form 0 when it passed, else -1 (no process ran). */
  exit_code: number;
  /** Of the last try: the command's output, or the response body / connection error, at most 500 characters. */
  output: string;
  /** The http form: the status of the last answer, when there was one. */
  http_status?: number;
  /** Every try, in order. */
  tries?: HealthTry[];
}

export interface HealthTry {
  attempt: number;
  passed: boolean;
  exit_code: number;
  http_status?: number;
  duration_ms: number;
}

export interface RollbackResult {
  status: 'succeeded' | 'failed' | 'timed_out' | 'interrupted';
  steps: StepResult[];
}

export interface AttemptResult {
  attempt: number;
  status: FinalStatus;
  exit_code: number;
  duration_ms: number;
  error_code?: ErrorCode;
}

export function isFinal(status: ResultStatus): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

export interface Rejection {
  code: ErrorCode;
  error: string;
}

export interface RequestRef {
  id: string;
  action: string | null;
  transaction?: string | undefined;
}

/** Fixed key order: build every result through here. */
export function makeResult(
  host: string,
  ref: RequestRef,
  fields: Partial<Omit<Result, 'id' | 'host' | 'action'>> & { status: ResultStatus },
): Result {
  const r: Result = {
    id: ref.id,
    host,
    action: ref.action,
    status: fields.status,
    exit_code: fields.exit_code ?? -1,
    stdout: fields.stdout ?? '',
    stderr: fields.stderr ?? '',
    stdout_truncated: fields.stdout_truncated ?? false,
    stderr_truncated: fields.stderr_truncated ?? false,
  };
  if (fields.error_code !== undefined) r.error_code = fields.error_code;
  if (fields.error !== undefined) r.error = fields.error;
  if (fields.executed_at !== undefined) r.executed_at = fields.executed_at;
  if (fields.completed_at !== undefined) r.completed_at = fields.completed_at;
  if (fields.duration_ms !== undefined) r.duration_ms = fields.duration_ms;
  if (fields.run_at !== undefined) r.run_at = fields.run_at;
  if (fields.steps !== undefined) r.steps = fields.steps;
  if (fields.health !== undefined) r.health = fields.health;
  if (fields.rollback !== undefined) r.rollback = fields.rollback;
  if (fields.attempts !== undefined) r.attempts = fields.attempts;
  if (fields.note !== undefined) r.note = fields.note;
  if (ref.transaction !== undefined) r.transaction = ref.transaction;
  return r;
}

export function rejected(host: string, ref: RequestRef, rejection: Rejection, at: Date): Result {
  return makeResult(host, ref, {
    status: 'rejected',
    error_code: rejection.code,
    error: rejection.error,
    completed_at: at.toISOString(),
  });
}
