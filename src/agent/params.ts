/**
 * Params HA shows as select/number entities: their current values, kept in
 * state_dir and retained on P/H/param/ACTION/PARAM; a button press runs the
 * action with them. A new value arrives on …/set and is validated like any request.
 */
import { z } from 'zod';
import type { Config } from '../config/load.js';
import { exposedParams, initialParamValue, paramTopic } from '../core/discovery.js';
import { validateParams } from '../core/resolve.js';
import type { Logger } from '../log.js';
import { JsonStateFile } from './state-file.js';
import type { RetainedPublisher } from './discovery.js';

export class ParamStore {
  private readonly file: JsonStateFile<Record<string, Record<string, string>>>;
  private readonly values: Record<string, Record<string, string>> = {};

  constructor(
    private readonly config: Config,
    private readonly mqtt: RetainedPublisher,
    private readonly log: Logger,
  ) {
    this.file = new JsonStateFile(
      config.state_dir,
      'params.json',
      z.record(z.string(), z.record(z.string(), z.string())),
      log,
      'the saved param values',
    );
    const saved = this.file.read({});
    for (const [action, spec] of Object.entries(config.actions)) {
      for (const [param, p] of exposedParams(spec)) {
        const previous = saved[action]?.[param];
        // A saved value that the config no longer allows falls back to the initial one.
        const ok =
          previous !== undefined && typeof validateParams({ [param]: p }, { [param]: previous }) !== 'string';
        (this.values[action] ??= {})[param] = ok ? previous : initialParamValue(p);
      }
    }
  }

  /** The topic filter for HA's commands. */
  get setFilter(): string {
    return `${this.config.mqtt.prefix}/${this.config.host}/param/+/+/set`;
  }

  /** The params a press of `action` runs with. */
  pressParams(action: string): Record<string, string> {
    return { ...(this.values[action] ?? {}) };
  }

  async publishAll(): Promise<void> {
    for (const [action, params] of Object.entries(this.values)) {
      for (const [param, value] of Object.entries(params)) {
        await this.mqtt.publish(paramTopic(this.config.mqtt.prefix, this.config.host, action, param), value, {
          retain: true,
        });
      }
    }
  }

  /** Returns true when `topic` was a param command (handled or refused). */
  handleSet(topic: string, payload: Buffer, retained: boolean): boolean {
    const head = `${this.config.mqtt.prefix}/${this.config.host}/param/`;
    if (!topic.startsWith(head) || !topic.endsWith('/set')) return false;
    const [action, param, ...rest] = topic.slice(head.length, -'/set'.length).split('/');
    if (!action || !param || rest.length > 0) return false;
    const current = this.values[action];
    const spec = this.config.actions[action]?.params[param];
    if (!current || !spec || !(param in current)) {
      this.log.warn({ topic }, 'a value was set for a param that is not shown in Home Assistant; ignored');
      return true;
    }
    if (retained) {
      // Like commands, a retained set would apply again at every reconnect.
      this.log.warn({ topic }, 'ignored a retained param value; publish it without the retain flag');
      return true;
    }
    let value: unknown = payload.toString('utf8').trim();
    // HA's number entity may send "5.0" for 5.
    if (spec.type === 'integer' && /^-?\d+\.0+$/.test(value as string))
      value = (value as string).replace(/\.0+$/, '');
    const checked = validateParams({ [param]: spec }, { [param]: value });
    if (typeof checked === 'string') {
      this.log.warn({ topic, error: checked }, 'refused a param value');
    } else {
      current[param] = checked[param] ?? current[param] ?? '';
      this.file.write(this.values);
    }
    // Publish the value in force either way, so HA's entity shows what a press would use.
    this.mqtt
      .publish(paramTopic(this.config.mqtt.prefix, this.config.host, action, param), current[param] ?? '', {
        retain: true,
      })
      .catch((err: unknown) => this.log.warn({ err }, 'could not publish a param value'));
    return true;
  }
}
