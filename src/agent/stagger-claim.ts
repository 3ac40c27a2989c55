/**
 * One claim of a stagger group, from its publication to the tie-break: claim → settle window → the
 * broker's echo of our own claim → first claim taken wins → re-read (docs/stagger.md § The protocol).
 * MQTT has no compare-and-swap, so this is where a run is decided safely or not at all; it is its own
 * module because the protocol's waits and checks are one sequence, apart from choosing what to claim.
 */
import { groupLast, sameRecord, winner, type Claim } from '../core/stagger.js';
import type { Logger } from '../log.js';
import type { GroupView, OwnClaim } from './stagger-intake.js';
import type { StaggerOutbox } from './stagger-outbox.js';

/** How long a claim waits for the broker to send it back, at least (else ten settle windows). */
const ECHO_WAIT_MIN_MS = 10_000;
const echoWait = (s: { settle: number }) => Math.max(10 * s.settle, ECHO_WAIT_MIN_MS);
/**
 * How long a claim counts without its retraction: as long as its host may take to decide (settle, then
 * its echo), and a settle more. A claim of a host that died deciding lapses after it (docs/stagger.md).
 */
export const claimLifetime = (s: { settle: number }) => 2 * s.settle + echoWait(s);

export interface ClaimContext {
  host: string;
  outbox: StaggerOutbox;
  log: Logger;
  isConnected(): boolean;
  /** A timer the coordinator clears when it stops. */
  after(ms: number, fn: () => void): void;
}

/**
 * Claims group `name` for request `item` and settles the claim: true when this host won and may start
 * now. The caller retracts the claim whatever the answer, and decides again on false.
 */
export async function settleClaim(
  ctx: ClaimContext,
  name: string,
  g: GroupView,
  item: { id: string; action: string },
  s: { settle: number },
  /** False once stopped, or withdrawn by a cancel meanwhile. */
  stillWanted: () => boolean,
): Promise<boolean> {
  const mine: Claim = {
    host: ctx.host,
    action: item.action,
    id: item.id,
    at: new Date().toISOString(),
  };
  const lastBefore = groupLast(g.records.values());
  const own: OwnClaim = { id: mine.id, at: mine.at };
  g.own = own;
  await ctx.outbox.claim(name, mine, claimLifetime(s));
  await new Promise<void>((resolve) => ctx.after(s.settle, resolve));
  // And until the broker sent our own claim back: every claim it took before ours has reached us,
  // however slow the machine or the link (docs/stagger.md § The protocol, step 8).
  if (own.seq === undefined)
    await new Promise<void>((resolve) => {
      own.echoed = resolve;
      ctx.after(echoWait(s), resolve);
    });
  // Stopped, or withdrawn by a cancel meanwhile: the claim is retracted by the caller, nothing starts.
  if (!stillWanted()) return false;
  if (!ctx.isConnected()) {
    ctx.log.warn({ group: name, id: item.id }, 'lost the broker during the settle window; not deciding now');
    return false;
  }
  const lastNow = groupLast(g.records.values());
  if (!sameRecord(lastNow, lastBefore) && lastNow !== lastBefore) {
    ctx.log.info(
      { group: name, id: item.id, last: lastNow },
      'a run of the group started during the settle window; rescheduling',
    );
    return false;
  }
  if (own.seq === undefined) {
    ctx.log.warn(
      { group: name, id: item.id },
      "the broker did not send this host's claim back; not deciding now",
    );
    return false;
  }
  // The first claim the broker took wins: every member receives them in that order, so each decides
  // the same without trusting clocks or the settle window (docs/stagger.md § The protocol, step 8).
  const ownSeq = own.seq;
  const earlier = [...g.claims.values()].filter((c) => c.claim.host !== ctx.host && c.seq < ownSeq);
  const win = earlier.length > 0 ? winner(earlier.map((c) => c.claim)) : mine;
  if (win?.host !== ctx.host) {
    ctx.log.info(
      { group: name, id: item.id, winner: win },
      "lost the tie-break for the group; waiting for the winner's run",
    );
    return false;
  }
  return true;
}
