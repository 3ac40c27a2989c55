/**
 * Publishes HA discovery at each connection: what differs from what this agent published last
 * (remembered in state_dir), plus whatever the broker no longer holds — read back from the broker
 * itself, so an agent restarted against a broker that lost its retained messages republishes them
 * (docs/home-assistant.md § Discovery). Everything again after HA's birth message, and an empty
 * retained payload for every topic it no longer owns (a removed action, or discovery.enabled: false),
 * with the retained values of a removed action's params.
 */
import type { AgentPart, ConnectInfo } from './part.js';
import { z } from 'zod';
import type { Config } from '../config/load.js';
import { buildDiscovery, exposedParams, serialize } from '../core/discovery.js';
import { hostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { JsonStateFile } from './state-file.js';
import type { Publisher } from './publisher.js';
import type { ReadRetained } from './restart-check.js';

/** How long to wait for the broker's retained copies; only reached when some are missing (then republished). */
export const READ_BACK_MS = 2000;

export class DiscoveryPublisher implements AgentPart {
  readonly name = 'discovery';

  private readonly file: JsonStateFile<Record<string, string>>;
  private published: Record<string, string> = {};
  private birthTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    /** The broker's retained messages on some topics (session.ts); without it the record is trusted. */
    private readonly readRetained?: ReadRetained,
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
  }

  /** Reads the record of what was published last (the constructor does no I/O). */
  start(): void {
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
      switches: this.config.switches,
      updates: this.config.updates,
    });
    return new Map(msgs.map((m) => [m.topic, serialize(m)]));
  }

  /**
   * `onlyChanges` (each connection): skip what the record says was published with this payload *and*
   * the broker still retains byte for byte. Only those topics are read back, so a first start (empty
   * record) or a changed config never waits for the read-back.
   */
  async sync(onlyChanges: boolean): Promise<{ published: number; cleared: number }> {
    const want = this.desired();
    const recorded = onlyChanges ? [...want].filter(([t, p]) => this.published[t] === p).map(([t]) => t) : [];
    const held = await this.heldByBroker(recorded);
    let published = 0;
    let cleared = 0;
    for (const [topic, payload] of want) {
      if (onlyChanges && this.published[topic] === payload && held.get(topic) === payload) continue;
      await this.mqtt.publish(topic, payload, { retain: true });
      published++;
    }
    const exposed = this.exposedParamTopics();
    for (const [topic, payload] of Object.entries(this.published)) {
      if (want.has(topic)) continue;
      // An empty retained payload removes the entity from HA and the retained config from the broker.
      await this.mqtt.publish(topic, '', { retain: true });
      cleared++;
      // A removed select/number: its retained value would otherwise stay on the broker forever.
      const value = this.paramValueTopic(payload);
      if (value && !exposed.has(value)) await this.mqtt.publish(value, '', { retain: true });
    }
    this.published = Object.fromEntries(want);
    this.file.write(this.published);
    if (published + cleared > 0) this.log.info({ published, cleared }, 'home assistant discovery updated');
    return { published, cleared };
  }

  /**
   * At each connection what changed since it was last published, and what the broker no longer retains
   * (read back: it may have restarted without its retained messages; docs/home-assistant.md).
   */
  async onConnect(_info: ConnectInfo): Promise<void> {
    await this.sync(true);
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

  /** topic → retained payload as text; an unreadable broker reads as holding nothing (so all is republished). */
  private async heldByBroker(topics: string[]): Promise<Map<string, string>> {
    if (topics.length === 0 || !this.readRetained)
      return new Map(topics.map((t) => [t, this.published[t] ?? '']));
    try {
      const got = await this.readRetained(topics, READ_BACK_MS);
      const held = new Map([...got].map(([t, b]) => [t, b.toString()]));
      const missing = topics.length - [...held].filter(([t, p]) => this.published[t] === p).length;
      if (missing > 0)
        this.log.info({ missing }, 'the broker lost retained discovery configs: republishing them');
      return held;
    } catch (err) {
      this.log.warn({ err }, 'could not read retained discovery back from the broker: republishing it');
      return new Map();
    }
  }

  /** The retained value topics of the params exposed now (`P/H/param/ACTION/PARAM`). */
  private exposedParamTopics(): Set<string> {
    const t = hostTopics(this.config.mqtt.prefix, this.config.host);
    const out = new Set<string>();
    for (const [action, spec] of Object.entries(this.config.actions))
      for (const [param] of exposedParams(spec)) out.add(t.param(action, param));
    return out;
  }

  /** A recorded select/number config's value topic, when it is one of this host's params. */
  private paramValueTopic(payload: string): string | undefined {
    // `P/H/param/#` without its `#`: the record is a file in state_dir, so only this host's params are cleared.
    const under = hostTopics(this.config.mqtt.prefix, this.config.host).paramFilter.slice(0, -1);
    try {
      const parsed: unknown = JSON.parse(payload);
      if (typeof parsed !== 'object' || parsed === null) return undefined;
      const state = (parsed as { state_topic?: unknown }).state_topic;
      return typeof state === 'string' && state.startsWith(under) && !state.endsWith('/set')
        ? state
        : undefined;
    } catch {
      return undefined;
    }
  }
}
