/**
 * Keeps `P/H/status` saying `online` while the agent is connected. A last
 * will can land after the agent's own `online` and wrongly say `offline`:
 * a clustered broker publishes a dead node's wills some time later, even
 * though the agent has already moved to a surviving node; a broker the agent
 * left during a partition may share its retained store with the one it is on.
 * The agent listens to its own status and, seeing `offline` while it is
 * connected and not stopping, says `online` again (retained).
 */
import type { AgentPart } from './part.js';
import type { Logger } from '../log.js';

export class StatusGuard implements AgentPart {
  readonly name = 'status';

  private armed = false;
  private stopped = false;
  private pending: NodeJS.Timeout | undefined;
  private lastRepair = 0;

  constructor(
    /** `P/H/status` */
    readonly topic: string,
    private readonly republish: () => Promise<void>,
    private readonly log: Logger,
    /** At most one repair per this many ms: a misconfigured twin (same host id) cannot make it a storm. */
    private readonly minIntervalMs = 1000,
  ) {}

  start(): void {
    // Nothing to read: it acts on connections only.
  }

  /** Says `online` on every connection; once the broker acknowledged it, a stale `offline` is repaired. */
  async onConnect(): Promise<void> {
    await this.republish();
    this.arm();
  }

  onDisconnect(): void {
    this.disarm();
  }

  /** Our `online` is acknowledged on this connection: from now on an `offline` is stale. */
  arm(): void {
    if (!this.stopped) this.armed = true;
  }

  /** The connection closed: our own will may now rightly say `offline`. */
  disarm(): void {
    this.armed = false;
    clearTimeout(this.pending);
    this.pending = undefined;
  }

  /** Orderly stop: the agent itself is about to publish `offline`. */
  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  /** True when the message was on our status topic (and is handled here). */
  onMessage(topic: string, payload: Buffer): boolean {
    if (topic !== this.topic) return false;
    if (payload.toString() !== 'offline' || !this.armed || this.pending) return true;
    const wait = Math.max(0, this.lastRepair + this.minIntervalMs - Date.now());
    this.pending = setTimeout(() => {
      this.pending = undefined;
      if (!this.armed) return;
      this.lastRepair = Date.now();
      this.log.warn(
        { topic: this.topic },
        'a stale "offline" (a last will published late, or by another broker) replaced our status while connected; publishing "online" again',
      );
      this.republish().catch((err: unknown) => this.log.warn({ err }, 'could not publish "online" again'));
    }, wait);
    return true;
  }
}
