/**
 * Params HA shows as select/number entities: their current values, kept in
 * state_dir and retained on P/H/param/ACTION/PARAM; a button press runs the
 * action with them. A new value arrives on …/set and is validated like any request.
 */
import type { AgentPart } from './part.js';
import { z } from 'zod';
import type { Config } from '../config/load.js';
import type { ParamSpec } from '../config/schema.js';
import { exposedParams, initialParamValue } from '../core/discovery.js';
import { hostTopics, paramSetOf, type HostTopics } from '../core/topics.js';
import { validateParams } from '../core/resolve.js';
import type { Logger } from '../log.js';
import { JsonStateFile } from './state-file.js';
import type { Publisher } from './publisher.js';

/**
 * Sets handled: a burst of BURST, then RATE a second. A person moving a slider sends a few; anything more
 * is a flood, dropped before it costs a publish (docs/security.md § What the agent withstands).
 */
const BURST = 20;
const RATE_PER_S = 10;
/** params.json is rewritten (and fsync'd) at most once in this interval; the latest value wins. */
const WRITE_EVERY_MS = 1000;

export class ParamStore implements AgentPart {
  readonly name = 'params';

  private readonly file: JsonStateFile<Record<string, Record<string, string>>>;
  /** action → param → value, for exposed params only. Maps: the keys come from topic text. */
  private readonly values = new Map<string, Map<string, string>>();
  private readonly specs = new Map<string, Map<string, ParamSpec>>();
  private tokens = BURST;
  private refilledAt: number;
  private dropped = 0;
  private writeTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  private readonly topics: HostTopics;

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.refilledAt = now();
    this.topics = hostTopics(config.mqtt.prefix, config.host);
    this.file = new JsonStateFile(
      config.state_dir,
      'params.json',
      z.record(z.string(), z.record(z.string(), z.string())),
      log,
      'the saved param values',
    );
  }

  /** Reads the saved param values; a value the config no longer allows falls back (no I/O in the constructor). */
  start(): void {
    const saved = this.file.read({});
    for (const [action, spec] of Object.entries(this.config.actions)) {
      for (const [param, p] of exposedParams(spec)) {
        const savedAction = Object.hasOwn(saved, action) ? saved[action] : undefined;
        const previous = savedAction && Object.hasOwn(savedAction, param) ? savedAction[param] : undefined;
        // A saved value that the config no longer allows falls back to the initial one.
        const ok =
          previous !== undefined && typeof validateParams({ [param]: p }, { [param]: previous }) !== 'string';
        this.entry(this.values, action).set(param, ok ? previous : initialParamValue(p));
        this.entry(this.specs, action).set(param, p);
      }
    }
  }

  /** The params a press of `action` runs with. */
  pressParams(action: string): Record<string, string> {
    return Object.fromEntries(this.values.get(action) ?? []);
  }

  onConnect(): Promise<void> {
    return this.publishAll();
  }

  async publishAll(): Promise<void> {
    for (const [action, params] of this.values) {
      for (const [param, value] of params) {
        await this.mqtt.publish(this.topics.param(action, param), value, {
          retain: true,
        });
      }
    }
  }

  /** Returns true when `topic` was a param command (handled or refused). */
  handleSet(topic: string, payload: Buffer, retained: boolean): boolean {
    const set = paramSetOf(this.topics, topic);
    if (!set) return false;
    const { action, param } = set;
    const current = this.values.get(action);
    const spec = this.specs.get(action)?.get(param);
    if (!current || !spec) {
      this.log.warn({ topic }, 'a value was set for a param that is not shown in Home Assistant; ignored');
      return true;
    }
    if (retained) {
      // Like commands, a retained set would apply again at every reconnect.
      this.log.warn({ topic }, 'ignored a retained param value; publish it without the retain flag');
      return true;
    }
    if (!this.take()) return true;
    let value: unknown = payload.toString('utf8').trim();
    // HA's number entity may send "5.0" for 5.
    if (spec.type === 'integer' && /^-?\d+\.0+$/.test(value as string))
      value = (value as string).replace(/\.0+$/, '');
    const checked = validateParams({ [param]: spec }, { [param]: value });
    if (typeof checked === 'string') {
      this.log.warn({ topic, error: checked }, 'refused a param value');
    } else {
      const next = checked[param] ?? current.get(param) ?? '';
      if (next !== current.get(param)) {
        current.set(param, next);
        this.scheduleWrite();
      }
    }
    // Publish the value in force either way, so HA's entity shows what a press would use.
    this.mqtt
      .publish(this.topics.param(action, param), current.get(param) ?? '', {
        retain: true,
      })
      .catch((err: unknown) => this.log.warn({ err }, 'could not publish a param value'));
    return true;
  }

  /** Writes a pending change now (the agent's stop). */
  stop(): void {
    clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    this.flush();
  }

  /** A token from the bucket, or false (counted, and logged once a second at most) when the flood is on. */
  private take(): boolean {
    const now = this.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilledAt) / 1000) * RATE_PER_S);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens--;
      if (this.dropped > 0) {
        this.log.warn({ dropped: this.dropped }, 'param sets arrived faster than they are handled; dropped');
        this.dropped = 0;
      }
      return true;
    }
    if (this.dropped++ === 0)
      this.log.warn(
        { burst: BURST, per_second: RATE_PER_S },
        'param sets arrive faster than they are handled; dropping the excess (the values in force are unchanged)',
      );
    return false;
  }

  private scheduleWrite(): void {
    this.dirty = true;
    this.writeTimer ??= setTimeout(() => {
      this.writeTimer = undefined;
      this.flush();
    }, WRITE_EVERY_MS);
  }

  private flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const out = Object.create(null) as Record<string, Record<string, string>>;
    for (const [action, params] of this.values)
      out[action] = Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(params));
    this.file.write(out);
  }

  private entry<V>(map: Map<string, Map<string, V>>, key: string): Map<string, V> {
    let m = map.get(key);
    if (!m) map.set(key, (m = new Map()));
    return m;
  }
}
