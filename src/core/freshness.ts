/**
 * Whether a request is still fresh enough to run (docs/mqtt-api.md § Late requests). A request the
 * broker held in the agent's persistent session while the host was down must not run hours later:
 * with `ts` it is valid for `ttl` seconds, or, without `ttl`, for the action's `max_age` (else
 * `execution.max_age`). A request with neither `ts` nor `ttl` (a bare `mosquitto_pub`, HA's plain
 * PRESS) carries no time at all, so it runs whenever it arrives. Pure: the clock is the caller's.
 */
import type { Rejection } from './result.js';

/**
 * How far in the future a `ts` may be before the sender's clock is called wrong: the same allowance as
 * fleet records (docs/stagger.md), generous for NTP-synced hosts, small against a clock set days ahead
 * (which would stretch every `ttl` by as much).
 */
export const MAX_TS_SKEW_MS = 60_000;

const LATE_HINT =
  "it most likely waited at the broker while this host was offline; send it again, or check the sender's clock";

export interface Stamp {
  /** Sender time, ms since epoch. */
  ts: number | undefined;
  /** Seconds of validity after `ts`. */
  ttl: number | undefined;
}

/** undefined when the request may run now; else the `expired` rejection that says why and what to do. */
export function staleness(stamp: Stamp, now: number, maxAgeMs: number): Rejection | undefined {
  const { ts, ttl } = stamp;
  if (ts === undefined) return undefined;
  if (ts > now + MAX_TS_SKEW_MS) {
    const ahead = Math.round((ts - now) / 1000);
    return {
      code: 'expired',
      error: `the request's ts is ${ahead} s in the future by this host's clock (more than ${MAX_TS_SKEW_MS / 1000} s of clock skew), so its validity cannot be trusted; it was not run — fix the clock of the sender or of this host (NTP), then send it again`,
    };
  }
  const validMs = ttl !== undefined ? ttl * 1000 : maxAgeMs;
  if (now <= ts + validMs) return undefined;
  const late = Math.round((now - ts - validMs) / 1000);
  const age = Math.round((now - ts) / 1000);
  // Whole sentences, so docs/operations.md can quote them as they are logged.
  const error =
    ttl !== undefined
      ? `the request expired ${late} s ago (ts + ttl is in the past: sent ${age} s ago with a ttl of ${ttl} s) and was not run — ${LATE_HINT}`
      : `the request expired ${late} s ago (ts + max_age is in the past: sent ${age} s ago without a ttl, and max_age is ${Math.round(maxAgeMs / 1000)} s) and was not run — ${LATE_HINT}`;
  return { code: 'expired', error };
}
