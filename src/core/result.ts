/**
 * Result objects (docs/mqtt-api.md § Result object), shaped as data with a stable
 * key order so a republished retained result is byte-identical.
 */
import {
  FINAL_STATUSES,
  type ErrorCode,
  type FinalStatus,
  type Result,
  type ResultStatus,
} from './formats.js';

// The types are the schemas' (core/formats.ts): one definition of the result object.
export { FINAL_STATUSES };
export type {
  AttemptResult,
  ErrorCode,
  FinalStatus,
  HealthResult,
  HealthTry,
  Result,
  ResultStatus,
  RebootInfo,
  RollbackResult,
  StepResult,
} from './formats.js';

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
  if (fields.reboot !== undefined) r.reboot = fields.reboot;
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
