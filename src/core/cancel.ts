/**
 * Cancel requests, the pure part (docs/mqtt-api.md § Cancel): what a cancelled request's final result
 * says, and the answer a cancel request itself gets. Pure: the clock comes from the caller.
 */
import { makeResult, type RequestRef, type Result } from './result.js';

/**
 * `cancel: "@oldest"`: the request that has run longest on this host — what Home Assistant's Cancel
 * button sends, since a button cannot know the id (docs/home-assistant.md § Cancel and Running).
 * Never an id: a request id starts with a letter or a digit.
 */
export const CANCEL_OLDEST = '@oldest';

/**
 * A run stopped by cancel request `by`: `cancelled` / `cancelled`, exit_code -1, everything it did kept
 * (output, steps, health, rollback). A run that succeeded before the kill took effect stays succeeded.
 */
export function asCancelled(result: Result, by: string): Result {
  if (result.status === 'succeeded' || result.status === 'cancelled') return result;
  return {
    ...result,
    status: 'cancelled',
    exit_code: -1,
    error_code: 'cancelled',
    error: `cancelled by request ${by}: ${whatHappened(result)}`,
  };
}

function whatHappened(result: Result): string {
  const rb = result.rollback;
  if (!rb)
    return 'the command was killed with its whole process group — check the host before running it again';
  if (rb.status === 'succeeded')
    return 'the command was killed, then the rollback ran and succeeded, so the previous state is back';
  if (rb.status === 'interrupted')
    return 'the command was killed, and the agent stopped during the rollback — check the host by hand';
  return `the command was killed, and the rollback failed too (${rb.status}) — the host may be half-deployed: check it by hand now`;
}

/** A queued or scheduled request withdrawn before it started: nothing ran. */
export function cancelledBeforeStart(host: string, ref: RequestRef, by: string, now: Date): Result {
  return makeResult(host, ref, {
    status: 'cancelled',
    error_code: 'cancelled',
    error: `cancelled by request ${by} before it started; nothing ran`,
    completed_at: now.toISOString(),
  });
}

/**
 * The cancel request's own final: `succeeded` when its target ended `cancelled`; when the target
 * ended otherwise first (it finished before the kill took effect), `rejected` / `not_found` with
 * the status it ended with. `action` is null: nothing of the cancel request itself runs.
 */
export function cancelAnswer(host: string, ref: RequestRef, target: Result, now: Date): Result {
  if (target.status === 'cancelled')
    return makeResult(host, ref, {
      status: 'succeeded',
      exit_code: 0,
      completed_at: now.toISOString(),
      note: `cancelled request ${target.id} (${target.action ?? 'unknown action'})`,
    });
  return makeResult(host, ref, {
    status: 'rejected',
    error_code: 'not_found',
    error: `request ${target.id} ended ${target.status} before the cancel took effect; nothing was cancelled`,
    completed_at: now.toISOString(),
  });
}
