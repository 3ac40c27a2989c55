/**
 * A takeover fight: another client connects with this agent's client id, the broker hands it the
 * session and drops this agent (MQTT 5: DISCONNECT 0x8E Session taken over; 3.1.1 and some brokers
 * just close), this agent reconnects at once and drops the other one, and so on — several times a
 * second, each time firing the `offline` will (docs/security.md § Broker identities). Reconnecting
 * at once makes it worse: the agent waits longer after each takeover, and says once what is wrong.
 */
import type { Attempt } from '../core/failover.js';
import type { Logger } from '../log.js';

const SESSION_TAKEN_OVER = 0x8e;
/** A connection shorter than this ended "at once". */
const SHORT_MS = 2_000;
/** This many immediate ends in a row, without a reason, count as a takeover too. */
const SHORT_IN_A_ROW = 3;
/** A connection that lasts this long ends the fight. */
const PEACE_MS = 60_000;
const FIRST_WAIT_MS = 5_000;
const MAX_WAIT_MS = 5 * 60_000;

export class TakeoverWatch {
  private connectedAt = 0;
  private takenOver = false;
  private shortInARow = 0;
  private fights = 0;

  constructor(
    private readonly clientId: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  connected(): void {
    this.connectedAt = this.now();
    this.takenOver = false;
  }

  /** The broker's DISCONNECT, with its reason code. */
  disconnected(reasonCode: number | undefined): void {
    if (reasonCode === SESSION_TAKEN_OVER) this.takenOver = true;
  }

  /** The next attempt after a connection ended (`wasConnected`: it had been accepted), delayed if fighting. */
  delay(next: Attempt, wasConnected: boolean): Attempt {
    if (!wasConnected) return next;
    const lived = this.now() - this.connectedAt;
    if (lived >= PEACE_MS) {
      if (this.fights > 0) this.log.info({ clientId: this.clientId }, 'no more takeovers of the client id');
      this.fights = 0;
      this.shortInARow = 0;
    }
    this.shortInARow = lived < SHORT_MS ? this.shortInARow + 1 : 0;
    if (!this.takenOver && this.shortInARow < SHORT_IN_A_ROW) return next;
    this.fights += 1;
    if (this.fights === 1)
      this.log.error(
        {
          clientId: this.clientId,
          reason: this.takenOver ? 'session taken over (0x8E)' : 'closed right after connecting, repeatedly',
        },
        `another client is using this agent's client id ${this.clientId} — check for a second agent with the same host id or a leaked account; reconnecting more slowly until it stops`,
      );
    const wait = Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** (this.fights - 1));
    return { ...next, delayMs: Math.max(next.delayMs, wait) };
  }
}
