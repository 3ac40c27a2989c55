/**
 * Fleet-wide stagger: a group's runs (any host) start at least `interval`
 * apart, never two at once. MQTT has no compare-and-swap, so a run is decided
 * by claim → settle window → deterministic tie-break → re-read (docs/stagger.md).
 * The coordinator keeps each group's state current from what arrives on the
 * fleet topics and from the connection; whose turn it is, is decided in
 * stagger-turns.ts, and a claim is settled in stagger-claim.ts.
 */
import { parseFleetTopic, staggerSubscriptions } from '../core/fleet-topics.js';
import { newer, sameRecord, type StaggerRecord } from '../core/stagger.js';
import { hostOfTopic, hostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import { FleetIntake } from './stagger-intake.js';
import { StaggerOutbox } from './stagger-outbox.js';
import { StaggerStore } from './stagger-store.js';
import { StaggerTurns, type StaggerConfig, type StaggerHooks, type StaggerItem } from './stagger-turns.js';
import type { Publisher } from './publisher.js';

/** The topic filters an agent with staggered actions subscribes to: members, records, claims, peers' status. */
export function fleetSubscriptions(prefix: string): string[] {
  return [...staggerSubscriptions(prefix), hostTopics(prefix, '+').status];
}

export class StaggerCoordinator<T extends StaggerItem> {
  private readonly intake: FleetIntake;
  private readonly outbox: StaggerOutbox;
  private readonly store: StaggerStore;
  private readonly turns: StaggerTurns<T>;

  constructor(
    private readonly opts: {
      prefix: string;
      host: string;
      stateDir: string;
      groups: Iterable<[string, StaggerConfig]>;
    },
    mqtt: Publisher,
    hooks: StaggerHooks<T>,
    private readonly log: Logger,
    /** The session's own view: a request can arrive before the agent's connect handlers ran. */
    private readonly isConnected: () => boolean,
  ) {
    this.outbox = new StaggerOutbox(opts.prefix, opts.host, mqtt, log);
    this.intake = new FleetIntake(opts.host, log, {
      save: () => this.save(),
      publishOwn: (group, rec) => this.outbox.own(group, rec),
      isConnected: () => this.isConnected(),
    });
    this.store = new StaggerStore(opts.stateDir, opts.host, log);
    this.turns = new StaggerTurns(opts.host, this.intake, this.outbox, this.store, hooks, log, () =>
      this.isConnected(),
    );
  }

  /** Reads this host's saved records of its groups (the constructor does no I/O). */
  open(): void {
    const opts = this.opts;
    const saved = this.store.read();
    for (const [group] of opts.groups)
      this.turns.group(group).records = new Map(Object.entries(saved.groups[group] ?? {}));
    if (saved.dropped.length > 0) {
      this.log.warn(
        { file: this.store.path, dropped: saved.dropped },
        'dropped stagger records from state_dir that no longer count (docs/stagger.md § Failure cases)',
      );
      this.save();
    }
  }

  submit(item: T): void {
    this.turns.submit(item);
  }

  /** Takes pending request `id` out of its group (a cancel): see StaggerTurns.withdraw. */
  withdraw(id: string): T | undefined {
    return this.turns.withdraw(id);
  }

  /** Returns true when the message was a fleet or status message. */
  onMessage(topic: string, payload: Buffer): boolean {
    const text = payload.toString('utf8');
    const peer = hostOfTopic(this.opts.prefix, topic, 'status');
    if (peer !== undefined) {
      this.intake.onStatus(peer, text);
      for (const name of this.turns.groups.keys()) this.turns.kick(name);
      return true;
    }
    const fleet = parseFleetTopic(this.opts.prefix, topic);
    if (!fleet) return false;
    const g = this.turns.groups.get(fleet.group);
    if (!g) return true; // a group this host has no action in
    if (fleet.kind === 'last') this.intake.onRecord(fleet.group, g, fleet.host, text);
    else if (fleet.kind === 'member') this.intake.onMember(fleet.group, g, fleet.host, text);
    else if (fleet.host !== this.opts.host) this.intake.onClaim(fleet.group, g, fleet.host, text);
    else this.intake.onOwnClaim(g, text);
    this.turns.kick(fleet.group);
    return true;
  }

  onConnect(): void {
    this.turns.readyAt = Date.now() + Math.max(0, ...[...this.opts.groups].map(([, s]) => s.settle));
    for (const [name, g] of this.turns.groups) {
      g.brokerOwn = undefined;
      this.outbox.member(name);
      // The broker may have restarted without its retained messages: once its copy of our record had
      // time to arrive, put back our OWN record if the broker lacks it. Each member does the same for
      // its own; nobody republishes another host's record (docs/stagger.md § Durability and outages).
      const settle = Math.max(...[...this.opts.groups].filter(([n]) => n === name).map(([, s]) => s.settle));
      this.turns.after(settle, () => {
        const mine = g.records.get(this.opts.host);
        if (mine && !sameRecord(newer(mine, g.brokerOwn), g.brokerOwn)) this.outbox.own(name, mine);
      });
      this.turns.kick(name);
    }
  }

  onDisconnect(): void {
    this.turns.readyAt = Number.POSITIVE_INFINITY;
  }

  /** The record of a run this host started (the runner calls it when a health check settles). */
  release(group: string, record: StaggerRecord): void {
    if (record.host !== this.opts.host) return;
    const g = this.turns.group(group);
    const mine = newer(g.records.get(this.opts.host), record) ?? record;
    g.records.set(this.opts.host, mine);
    this.save();
    this.outbox.own(group, mine);
    this.turns.kick(group);
  }

  /** The record of the run this host started for request `id`, while it is this host's latest. */
  recordOf(group: string, id: string): StaggerRecord | undefined {
    const own = this.turns.groups.get(group)?.records.get(this.opts.host);
    return own && own.id === id ? own : undefined;
  }

  stop(): void {
    this.turns.stop();
  }

  pendingCount(): number {
    return this.turns.pendingCount();
  }

  private save(): void {
    this.store.write(this.turns.groups);
  }
}
