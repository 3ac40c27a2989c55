/**
 * Why a run's signal was aborted: a cancel request (its result `cancelled`, docs/mqtt-api.md §
 * Cancel) or the agent's stop (`interrupted`). Both abort the one signal the command runs under;
 * the reason tells them apart afterwards. It lives in exec/ because the rollback layer must ask it
 * (a cancel still rolls back, a stop does not: exec/rollback.ts), and exec/ never imports agent/;
 * agent/run-control.ts is the one place that aborts with it.
 */

/** The abort reason of a cancel request. */
export class CancelReason {
  constructor(readonly by: string) {}
}

/** Whether `signal` was aborted by a cancel request (and not by the agent's stop before it). */
export function cancelRequested(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && signal.reason instanceof CancelReason;
}
