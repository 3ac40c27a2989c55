/**
 * The heartbeat (docs/mqtt-api.md § Heartbeat): retained on P/H/heartbeat at every connect and every
 * heartbeat.interval while connected. On its beat, connected or not, the counters are saved and a
 * degraded state_dir probed again: at most one small write an interval, none when idle.
 */
import type { Config } from '../config/load.js';
import type { HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { readHeartbeat } from './heartbeat.js';
import type { AgentPart } from './part.js';
import type { Pipeline } from './pipeline.js';
import type { MqttSession } from './session.js';
import type { StateHealth } from './state-health.js';

export class Heartbeats implements AgentPart {
  readonly name = 'heartbeat';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly topics: HostTopics,
    private readonly session: MqttSession,
    private readonly pipeline: Pipeline,
    private readonly health: StateHealth,
    /** Results handed to the session and not yet acknowledged. */
    private readonly pendingResults: () => number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      // While state_dir is full, one probe a beat: space returning ends the degraded mode by itself.
      if (this.health.degraded) this.health.check();
      this.pipeline.saveStats();
      if (this.session.connected) void this.publish();
    }, this.config.heartbeat.interval);
  }

  onConnect(): Promise<void> {
    return this.publish();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async publish(): Promise<void> {
    try {
      const hb = await readHeartbeat({
        host: this.config.host,
        version: VERSION,
        running: this.pipeline.runningCount,
        queued: this.pipeline.queuedCount,
        pendingResults: this.pendingResults(),
        ...this.pipeline.figures(),
        diskPath: this.config.state_dir,
        insecure: this.config.mqtt.insecure,
        degraded: this.health.degraded,
      });
      await this.session.publish(this.topics.heartbeat, JSON.stringify(hb), { retain: true });
    } catch (err) {
      this.log.warn({ err }, 'could not publish a heartbeat');
    }
  }
}
