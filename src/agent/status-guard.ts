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
  /** Our `online` is sent and not yet acknowledged; an `offline` seen meanwhile is checked once armed. */
  private publishing = false;
  private offlineWhilePublishing = false;
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
    this.publishing = true;
    this.offlineWhilePublishing = false;
    try {
      await this.republish();
    } finally {
      this.publishing = false;
    }
    this.arm();
    // MQTT.js handles the packets of one read before any promise continues: an `offline` read with our
    // PUBACK reached onMessage before arm() ran. It may be the newer message, so it is repaired too.
    if (this.offlineWhilePublishing) this.repair();
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
    this.offlineWhilePublishing = false;
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
    if (payload.toString() !== 'offline') return true;
    if (!this.armed && this.publishing && !this.stopped) this.offlineWhilePublishing = true;
    else if (this.armed) this.repair();
    return true;
  }

  /** Says `online` again, at most once per minIntervalMs. */
  private repair(): void {
    if (this.pending) return;
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
  }
}
