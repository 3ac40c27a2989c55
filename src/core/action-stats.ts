/**
 * Monitoring, the pure part: one place counts every final result, for the
 * heartbeat's `stats` (docs/mqtt-api.md § Status and heartbeat) and for its `actions`
 * extension (docs/mqtt-api.md § Heartbeat) — so the two can never disagree.
 */
import { z } from 'zod';
import { ACTION_NAME_RE } from './names.js';
import type { ActionFigures, Stats } from './formats.js';
import { FINAL_STATUSES, isFinal, type Result } from './result.js';

/**
 * Durations kept per action for p50/p95: its last 100 runs, not a time window. Homelab actions run
 * rarely (an upgrade a day, a restart now and then): the last 24 h would be empty most of the time,
 * while the last 100 runs always say something; the p95 of 100 runs is a run that happened, not an
 * extrapolation; and memory and the state file stay bounded (100 numbers an action).
 */
export const STATS_WINDOW = 100;

export type { ActionFigures, Stats } from './formats.js';

const counter = z.number().int().nonnegative();

const actionCountersSchema = z.object({
  count: counter,
  succeeded: counter,
  failed: counter,
  timed_out: counter,
  interrupted: counter,
  // Absent from files written before cancel existed.
  cancelled: counter.default(0),
  rejected: counter,
  // Sliced, not refused: a file written with a larger window still loads.
  durations: z.array(z.number().nonnegative()).transform((d) => d.slice(-STATS_WINDOW)),
  last_status: z.enum(FINAL_STATUSES).nullable(),
  last_at: z.string().nullable(),
});
export type ActionCounters = z.infer<typeof actionCountersSchema>;

/** `state_dir/stats.json`: the counters, so a restart does not reset what HA graphs. */
export const statsStateSchema = z.object({
  version: z.literal(1),
  totals: z.object({
    executed: counter,
    succeeded: counter,
    failed: counter,
    timed_out: counter,
    rejected: counter,
    duration_ms: z.number().nonnegative(),
  }),
  actions: z.record(z.string().regex(ACTION_NAME_RE), actionCountersSchema),
});
export type StatsState = z.infer<typeof statsStateSchema>;

export function emptyStats(): StatsState {
  return {
    version: 1,
    totals: { executed: 0, succeeded: 0, failed: 0, timed_out: 0, rejected: 0, duration_ms: 0 },
    actions: {},
  };
}

function emptyCounters(): ActionCounters {
  return {
    count: 0,
    succeeded: 0,
    failed: 0,
    timed_out: 0,
    interrupted: 0,
    cancelled: 0,
    rejected: 0,
    durations: [],
    last_status: null,
    last_at: null,
  };
}

/**
 * Nearest-rank percentile (the smallest value with at least p % of the values at or below it): always
 * a duration that was observed, and exact for small samples. null for no values.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1] ?? null;
}

/** Appends to a rolling window of at most `size` values, dropping the oldest. */
export function pushWindow(window: number[], value: number, size = STATS_WINDOW): void {
  window.push(value);
  if (window.length > size) window.splice(0, window.length - size);
}

/**
 * Counts one final result into `state` (progress results are ignored; returns whether anything changed).
 * Only results of a configured action are attributed to it: a rejected unknown action's name is the
 * sender's choice, and keeping it would let anyone grow the heartbeat and the file.
 */
export function recordResult(
  state: StatsState,
  result: Result,
  known: (action: string) => boolean,
  now: Date,
): boolean {
  const status = result.status;
  if (!isFinal(status)) return false;
  const t = state.totals;
  if (status === 'rejected') t.rejected++;
  else {
    t.executed++;
    // The contract's stats have no interrupted or cancelled count: those runs count as executed only.
    if (status !== 'interrupted' && status !== 'cancelled') t[status]++;
    if (result.duration_ms !== undefined) t.duration_ms += result.duration_ms;
  }
  const name = result.action;
  if (name === null || !known(name)) return true;
  // Own properties only: an action may be named "constructor", which Object.prototype also has.
  const a = Object.hasOwn(state.actions, name)
    ? (state.actions[name] as ActionCounters)
    : (state.actions[name] = emptyCounters());
  a[status]++;
  if (status !== 'rejected') a.count++;
  // A run cut short by a stop or a cancel says nothing about how long the action takes.
  if (
    status !== 'rejected' &&
    status !== 'interrupted' &&
    status !== 'cancelled' &&
    result.duration_ms !== undefined
  )
    pushWindow(a.durations, result.duration_ms);
  a.last_status = status;
  a.last_at = result.completed_at ?? now.toISOString();
  return true;
}

/** The contract's `stats`. avg_duration_ms: the mean over executed runs, as it always was. */
export function totalsOf(state: StatsState): Stats {
  const { executed, succeeded, failed, timed_out, rejected, duration_ms } = state.totals;
  return {
    executed,
    succeeded,
    failed,
    timed_out,
    rejected,
    avg_duration_ms: executed > 0 ? Math.round(duration_ms / executed) : 0,
  };
}

/** Every configured action, in config order, zeros before its first result: a stable shape for consumers. */
export function figuresOf(state: StatsState, actions: readonly string[]): Record<string, ActionFigures> {
  const out: Record<string, ActionFigures> = {};
  for (const name of actions) {
    const { durations, ...c } =
      (Object.hasOwn(state.actions, name) && state.actions[name]) || emptyCounters();
    out[name] = {
      count: c.count,
      succeeded: c.succeeded,
      failed: c.failed,
      timed_out: c.timed_out,
      interrupted: c.interrupted,
      cancelled: c.cancelled,
      rejected: c.rejected,
      p50_ms: percentile(durations, 50),
      p95_ms: percentile(durations, 95),
      samples: durations.length,
      last_status: c.last_status,
      last_at: c.last_at,
    };
  }
  return out;
}

/** Drops the figures of actions no longer configured (their HA sensors are cleared too); true if any were. */
export function pruneActions(state: StatsState, actions: readonly string[]): boolean {
  const keep = new Set(actions);
  const gone = Object.keys(state.actions).filter((name) => !keep.has(name));
  for (const name of gone) delete state.actions[name];
  return gone.length > 0;
}
