/**
 * One action on many hosts (docs/fleet.md): the per-host request ids of a run, the rows of its summary
 * and the exit code they add up to. Pure: the CLI (src/cli/send-fleet.ts) owns the I/O.
 */
import { createHash } from 'node:crypto';
import { REQUEST_ID_RE } from './names.js';

/** A run id: short enough that `<run-id>-<host>` stays a request id for most host ids. */
export const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,23}$/;

/** `r20261207T072512-a1b2`: when it started (UTC, to the second), plus 4 random hex digits. */
export function newRunId(now: Date, random: string): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 15);
  return `r${stamp}-${random.slice(0, 4)}`;
}

/**
 * The request id of `host` in run `runId`: `<run-id>-<host>` — or, when that is longer than the 64
 * characters a request id may have, the host cut short and `.` plus the first 8 hex digits of its
 * SHA-256, so two long host ids never share an id (docs/fleet.md § Request ids).
 */
export function hostRequestId(runId: string, host: string): string {
  const plain = `${runId}-${host}`;
  if (plain.length <= 64) return plain;
  const hash = createHash('sha256').update(host).digest('hex').slice(0, 8);
  const keep = 64 - runId.length - 1 - 1 - hash.length;
  const id = `${runId}-${host.slice(0, keep)}.${hash}`;
  if (!REQUEST_ID_RE.test(id)) throw new Error(`request id ${id} is invalid (run id ${runId})`);
  return id;
}

/**
 * What became of one host: a final result status, or one of the run's own —
 * `offline` (not online at the start: nothing sent), `not_started` (a serial run stopped before it),
 * `scheduled` (the agent deferred it past the wait: a stagger group), `no_answer` (sent, no final result
 * within the wait).
 */
export type RowStatus =
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'rejected'
  | 'interrupted'
  | 'cancelled'
  | 'offline'
  | 'not_started'
  | 'scheduled'
  | 'no_answer';

export interface FleetRow {
  host: string;
  id: string;
  status: RowStatus;
  exit_code?: number | undefined;
  duration_ms?: number | undefined;
  error_code?: string | undefined;
  error?: string | undefined;
  run_at?: string | undefined;
}

/** Not run yet, but nothing went wrong on the host: it was down, never reached, or runs later. */
const PENDING: ReadonlySet<RowStatus> = new Set(['offline', 'not_started', 'scheduled']);

export type RowClass = 'failed' | 'pending' | 'succeeded';

export function rowClass(status: RowStatus): RowClass {
  if (status === 'succeeded') return 'succeeded';
  return PENDING.has(status) ? 'pending' : 'failed';
}

/**
 * Exit codes of a fleet run (docs/fleet.md § Exit codes): 0 every host succeeded; 1 at least one host
 * failed (any other final status, or no answer within the wait); 4 none failed, but some were offline,
 * not started or are scheduled for later. 2 stays usage and connection errors; 3 is left to single send.
 */
export const FLEET_EXIT = { ok: 0, failed: 1, pending: 4 } as const;

export function fleetExitCode(rows: readonly FleetRow[]): number {
  if (rows.some((r) => rowClass(r.status) === 'failed')) return FLEET_EXIT.failed;
  if (rows.some((r) => rowClass(r.status) === 'pending')) return FLEET_EXIT.pending;
  return FLEET_EXIT.ok;
}

/** Failures first, then the hosts that have not run, then the successes; the run's order within each. */
export function orderRows(rows: readonly FleetRow[]): FleetRow[] {
  const rank: Record<RowClass, number> = { failed: 0, pending: 1, succeeded: 2 };
  return rows
    .map((r, i) => ({ r, i }))
    .sort((a, b) => rank[rowClass(a.r.status)] - rank[rowClass(b.r.status)] || a.i - b.i)
    .map((x) => x.r);
}

/** How many hosts ended in each status, in a stable order. */
export function countRows(rows: readonly FleetRow[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of orderRows(rows)) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}
