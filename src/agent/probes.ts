/**
 * Runs the config's probes, each on its own timer, and keeps their states
 * retained on `P/H/probe/NAME` (docs/mqtt-api.md § Probes).
 *
 * - Runs of one probe never overlap: the next is scheduled when one ends.
 * - Probes run whether or not execution.enabled is on: they are the owner's own
 *   checks with fixed argv, never something a message asked for.
 * - Every check is published (retained), not only changes: `checked_at` is how a
 *   reader tells a live probe from a stale state, and intervals are ≥ 1 s.
 * - The state topic of a probe removed from the config is cleared at connect,
 *   from the record of names in state_dir/probes.json.
 */
import { setMaxListeners } from 'node:events';
import type { AgentPart } from './part.js';
import { z } from 'zod';
import type { Config } from '../config/load.js';
import { probeState, type ProbeState } from '../core/probes.js';
import { hostTopics, type HostTopics } from '../core/topics.js';
import type { Isolation } from '../exec/wrap.js';
import type { Logger } from '../log.js';
import type { Publisher } from './publisher.js';
import { runCheck } from './probe-checks.js';
import { JsonStateFile } from './state-file.js';

/** The least time between the starts of two checks of one probe that checkNow asked for. */
const MIN_GAP_MS = 1000;

export class Probes implements AgentPart {
  readonly name = 'probes';

  private readonly topics: HostTopics;
  private readonly file: JsonStateFile<string[]>;
  /** The probes whose state topic holds a retained state of ours (state_dir/probes.json). */
  private published: string[] = [];
  /** The latest state of each probe, serialized: republished at every connect. */
  private readonly latest = new Map<string, string>();
  private readonly lastOk = new Map<string, boolean>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  /** The probes with a check in flight, and those asked to check again once it ends (checkNow). */
  private readonly busy = new Set<string>();
  private readonly again = new Set<string>();
  /** When each probe's latest check started (performance.now()): checkNow keeps them MIN_GAP_MS apart. */
  private readonly started = new Map<string, number>();
  /** Told of every new state (switches.ts); a listener's exception is logged, never thrown into a check. */
  private readonly listeners: ((state: ProbeState) => void)[] = [];
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    private readonly connected: () => boolean,
    /** Who runs a command probe's program, as for actions (docs/security.md § Commands run as another user). */
    private readonly isolation?: Isolation,
  ) {
    this.topics = hostTopics(config.mqtt.prefix, config.host);
    // Every check in flight listens on this one signal (two listeners for a ping or command probe),
    // each removed when its check ends: the count is bounded by the config, not a leak. Node's default
    // of 10 would log "Possible EventTarget memory leak detected" in the agent's log at every start
    // with more than 5 such probes.
    setMaxListeners(2 * Object.keys(config.probes).length + 10, this.abort.signal);
    this.file = new JsonStateFile(
      config.state_dir,
      'probes.json',
      z.array(z.string()),
      log,
      'the record of published probe states',
    );
  }

  get count(): number {
    return Object.keys(this.config.probes).length;
  }

  /** The first check of every probe starts at once; it is published when (or as soon as) the agent is connected. */
  start(): void {
    this.published = this.file.read([]);
    for (const name of Object.keys(this.config.probes)) this.schedule(name, 0);
    if (this.count > 0) this.log.info({ probes: Object.keys(this.config.probes) }, 'probes started');
  }

  /** `fn` hears every state, published or not (a switch's state follows its probe). */
  onState(fn: (state: ProbeState) => void): void {
    this.listeners.push(fn);
  }

  /** Checks `name` now rather than at its next interval (a switch's action just ran); once, if one is in flight. */
  checkNow(name: string): void {
    if (this.stopped || !Object.hasOwn(this.config.probes, name)) return;
    if (this.busy.has(name)) {
      this.again.add(name);
      return;
    }
    clearTimeout(this.timers.get(name));
    // However many results ask for it (a flood of refused switch requests), one check a second at most.
    const since = performance.now() - (this.started.get(name) ?? -Infinity);
    this.schedule(name, Math.max(0, MIN_GAP_MS - since));
  }

  /** At every connect: clear the states of probes no longer configured, then publish the latest of each. */
  onConnect(): Promise<void> {
    return this.publishAll();
  }

  async publishAll(): Promise<void> {
    const current = Object.keys(this.config.probes);
    for (const name of this.published.filter((n) => !current.includes(n))) {
      // An empty retained payload deletes the retained state from the broker.
      await this.mqtt.publish(this.topics.probe(name), '', { retain: true });
    }
    if (this.published.join('\n') !== current.join('\n')) this.file.write(current);
    this.published = current;
    for (const [name, payload] of this.latest)
      await this.mqtt.publish(this.topics.probe(name), payload, { retain: true });
  }

  /** Cancels what is scheduled and aborts checks in flight (their readings are not published). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.abort.abort();
    await Promise.allSettled([...this.running]);
  }

  private schedule(name: string, delayMs: number): void {
    if (this.stopped) return;
    this.timers.set(
      name,
      setTimeout(() => this.run(name), delayMs),
    );
  }

  private run(name: string): void {
    const probe = this.config.probes[name];
    if (!probe || this.stopped) return;
    const t0 = performance.now();
    this.started.set(name, t0);
    this.busy.add(name);
    const task = this.check(name)
      .catch((err: unknown) => this.log.error({ err, probe: name }, 'a probe check failed unexpectedly'))
      .finally(() => {
        this.running.delete(task);
        this.busy.delete(name);
        // From the start of this run, so the period stays `interval` however long the check took.
        const elapsed = performance.now() - t0;
        const next = this.again.delete(name)
          ? Math.max(0, MIN_GAP_MS - elapsed)
          : Math.max(0, probe.interval - elapsed);
        this.schedule(name, next);
      });
    this.running.add(task);
  }

  private async check(name: string): Promise<void> {
    const probe = this.config.probes[name];
    if (!probe) return;
    const checkedAt = new Date();
    const t0 = performance.now();
    const reading = await runCheck(probe, {
      path: this.config.execution.path,
      signal: this.abort.signal,
      command: { config: this.config, isolation: this.isolation },
    });
    if (this.stopped) return;
    const state = probeState(name, probe.type, reading, performance.now() - t0, checkedAt);
    this.logChange(state);
    for (const fn of this.listeners) {
      try {
        fn(state);
      } catch (err) {
        this.log.warn({ err, probe: name }, 'a listener of probe states failed');
      }
    }
    const payload = JSON.stringify(state);
    this.latest.set(name, payload);
    // While disconnected the state waits in `latest` for publishAll; never block the schedule on the broker.
    if (!this.connected()) return;
    this.mqtt
      .publish(this.topics.probe(name), payload, { retain: true })
      .catch((err: unknown) => this.log.warn({ err, probe: name }, 'could not publish a probe state'));
  }

  /** Only a change of verdict is logged, so a probe failing on every check says so once, not every interval. */
  private logChange(state: ProbeState): void {
    const before = this.lastOk.get(state.name);
    this.lastOk.set(state.name, state.ok);
    if (before === state.ok) return;
    const fields = {
      probe: state.name,
      type: state.type,
      value: state.value,
      error: state.error ?? undefined,
    };
    if (!state.ok) this.log.warn(fields, 'probe failing');
    else if (before === false) this.log.info(fields, 'probe ok again');
    else this.log.debug(fields, 'probe ok');
  }
}
