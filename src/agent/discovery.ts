/**
 * Publishes HA discovery: at start only what differs from what this agent
 * published last (remembered in state_dir), everything again after a lost
 * connection or HA's birth message, and an empty retained payload for every
 * topic it no longer owns (a removed action, or discovery.enabled: false).
 */
import { z } from 'zod';
import type { Config } from '../config/load.js';
import { buildDiscovery, serialize } from '../core/discovery.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { JsonStateFile } from './state-file.js';
import type { Publisher } from './publisher.js';

export class DiscoveryPublisher {
  private readonly file: JsonStateFile<Record<string, string>>;
  private published: Record<string, string>;
  private birthTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    /** Upper bound of the random delay before answering HA's birth message. */
    private readonly birthJitterMs = 2000,
  ) {
    this.file = new JsonStateFile(
      config.state_dir,
      'discovery.json',
      z.record(z.string(), z.string()),
      log,
      'the record of published discovery',
    );
    this.published = this.file.read({});
  }

  /** What should be retained now: topic → payload. */
  desired(): Map<string, string> {
    if (!this.config.discovery.enabled) return new Map();
    const msgs = buildDiscovery({
      host: this.config.host,
      prefix: this.config.mqtt.prefix,
      discoveryPrefix: this.config.discovery.prefix,
      version: VERSION,
      actions: this.config.actions,
      probes: this.config.probes,
      updates: this.config.updates,
    });
    return new Map(msgs.map((m) => [m.topic, serialize(m)]));
  }

  /** `onlyChanges`: at start, skip what the broker already holds from our last run. */
  async sync(onlyChanges: boolean): Promise<{ published: number; cleared: number }> {
    const want = this.desired();
    let published = 0;
    let cleared = 0;
    for (const [topic, payload] of want) {
      if (onlyChanges && this.published[topic] === payload) continue;
      await this.mqtt.publish(topic, payload, { retain: true });
      published++;
    }
    for (const topic of Object.keys(this.published)) {
      if (want.has(topic)) continue;
      // An empty retained payload removes the entity from HA and the retained config from the broker.
      await this.mqtt.publish(topic, '', { retain: true });
      cleared++;
    }
    this.published = Object.fromEntries(want);
    this.file.write(this.published);
    if (published + cleared > 0) this.log.info({ published, cleared }, 'home assistant discovery updated');
    return { published, cleared };
  }

  /** HA restarted (birth `online`): republish everything after a small random delay, so a fleet does not answer at once. */
  onBirth(): void {
    clearTimeout(this.birthTimer);
    this.birthTimer = setTimeout(() => {
      this.sync(false).catch((err: unknown) =>
        this.log.warn({ err }, "republishing discovery after HA's birth message failed"),
      );
    }, Math.random() * this.birthJitterMs);
  }

  stop(): void {
    clearTimeout(this.birthTimer);
  }
}
