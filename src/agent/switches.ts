/**
 * Keeps each switch's state retained on `P/H/switch/NAME` (docs/mqtt-api.md § Switches).
 *
 * - The state is its probe's: published after each check of that probe, so HA's switch (optimistic:
 *   false) flips only when the probe confirms it.
 * - When a final result of its turn_on or turn_off action comes (run, failed or refused, whoever sent
 *   it), the probe is checked at once; the state published with that reading shows a failure as the
 *   `error` attribute.
 * - Nothing is published before the first reading after a start: the retained state of the last run
 *   stays what HA shows, so an agent restart never flips a switch that is on.
 * - The state topic of a switch removed from the config is cleared at connect (state_dir/switches.json).
 */
import { z } from 'zod';
import type { Config } from '../config/load.js';
import type { ProbeState, Result } from '../core/formats.js';
import { switchesOf, switchState, type LastAction } from '../core/switches.js';
import { hostTopics, type HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import type { AgentPart } from './part.js';
import type { Publisher } from './publisher.js';
import { JsonStateFile } from './state-file.js';

export interface ProbeSource {
  onState(fn: (state: ProbeState) => void): void;
  checkNow(name: string): void;
}

export class Switches implements AgentPart {
  readonly name = 'switches';

  private readonly topics: HostTopics;
  private readonly file: JsonStateFile<string[]>;
  private published: string[] = [];
  private readonly probeStates = new Map<string, ProbeState>();
  private readonly lastActions = new Map<string, LastAction>();
  /** The latest payload of each switch, republished at every connect. */
  private readonly latest = new Map<string, string>();

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    private readonly connected: () => boolean,
    private readonly probes: ProbeSource,
  ) {
    this.topics = hostTopics(config.mqtt.prefix, config.host);
    this.file = new JsonStateFile(
      config.state_dir,
      'switches.json',
      z.array(z.string()),
      log,
      'the record of published switch states',
    );
  }

  start(): void {
    this.published = this.file.read([]);
    if (Object.keys(this.config.switches).length === 0) return;
    this.probes.onState((s) => this.onProbe(s));
  }

  /** Clears the states of switches no longer configured, then republishes the latest of each. */
  async onConnect(): Promise<void> {
    const current = Object.keys(this.config.switches);
    for (const name of this.published.filter((n) => !current.includes(n)))
      await this.mqtt.publish(this.topics.switchState(name), '', { retain: true });
    if (this.published.join('\n') !== current.join('\n')) this.file.write(current);
    this.published = current;
    for (const [name, payload] of this.latest)
      await this.mqtt.publish(this.topics.switchState(name), payload, { retain: true });
  }

  /** Every final result (outcomes.ts): a turn_on/turn_off of a switch is remembered, and its probe checked now. */
  onFinal(result: Result): void {
    if (result.action === null) return;
    const names = switchesOf(this.config.switches, result.action);
    for (const name of names) {
      this.lastActions.set(name, {
        id: result.id,
        action: result.action,
        status: result.status,
        error: result.error,
      });
      if (result.status !== 'succeeded')
        this.log.warn(
          { switch: name, action: result.action, status: result.status, error: result.error },
          'a switch action did not succeed',
        );
    }
    // A run changed (or tried to change) what the probe reads: read it now, not at its next interval. The
    // outcome is published with that reading, so no state carries the new outcome beside the old reading.
    for (const probe of new Set(names.map((n) => this.config.switches[n]?.probe)))
      if (probe !== undefined) this.probes.checkNow(probe);
  }

  stop(): void {
    // Nothing runs of its own: the probes' timers belong to probes.ts.
  }

  private onProbe(state: ProbeState): void {
    for (const [name, sw] of Object.entries(this.config.switches)) {
      if (sw.probe !== state.name) continue;
      this.probeStates.set(name, state);
      this.publish(name);
    }
  }

  private publish(name: string): void {
    const sw = this.config.switches[name];
    if (!sw) return;
    // Before the first reading the retained state of the last run stays (a restart never flips a switch).
    const probe = this.probeStates.get(name);
    if (!probe) return;
    const payload = JSON.stringify(switchState(name, sw, probe, this.lastActions.get(name)));
    this.latest.set(name, payload);
    if (!this.connected()) return;
    this.mqtt
      .publish(this.topics.switchState(name), payload, { retain: true })
      .catch((err: unknown) => this.log.warn({ err, switch: name }, 'could not publish a switch state'));
  }
}
