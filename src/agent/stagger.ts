/**
 * Fleet-wide stagger: a group's runs (any host) start at least `interval`
 * apart, never two at once. MQTT has no compare-and-swap, so a run is decided
 * by claim → settle window → deterministic tie-break → re-read (docs/stagger.md).
 * A request that cannot be decided safely waits rather than runs.
 */
import { z } from 'zod';
import type { ActionConfig } from '../config/schema.js';
import {
  claimSchema,
  claimTopic,
  dueAt,
  groupTopic,
  heldBy,
  memberTopic,
  newer,
  parseFleetTopic,
  parseJson,
  sameRecord,
  staggerRecordSchema,
  winner,
  type Claim,
  type StaggerRecord,
} from '../core/stagger.js';
import { hostOfTopic } from '../core/topics.js';
import type { Logger } from '../log.js';
import { JsonStateFile } from './state-file.js';

export type StaggerConfig = NonNullable<ActionConfig['stagger']>;

export interface StaggerItem {
  id: string;
  action: string;
  stagger: StaggerConfig;
  /** When the request was accepted (ms), for max_wait. */
  acceptedAt: number;
}

export interface StaggerHooks<T extends StaggerItem> {
  /** Start it now. `note` says how the decision was made when that matters (an outage). */
  run(item: T, note: string | undefined): void;
  /** Tell the requester when it will run (and why it waits, if not just the interval). */
  scheduled(item: T, runAt: Date, reason: string | undefined): void;
  /** Give up (max_wait ran out): a final rejection. */
  expire(item: T, error: string): void;
}

export interface FleetPublisher {
  publish(
    topic: string,
    payload: string,
    options: { retain: boolean; properties?: Record<string, unknown> },
  ): Promise<void>;
}

interface PeerClaim {
  claim: Claim;
  seenAt: number;
}

interface GroupState<T> {
  last: StaggerRecord | undefined;
  /** The newest record the broker has given us since we (re)connected. */
  brokerRecord: StaggerRecord | undefined;
  claims: Map<string, PeerClaim>;
  members: Set<string>;
  pending: T[];
  deciding: boolean;
  timer: NodeJS.Timeout | undefined;
  /** The run_at last told to each pending request, so a change is published once. */
  told: Map<string, { runAt: number; reason: string | undefined }>;
}

/** The topic filters an agent with staggered actions subscribes to: records, claims, members, peers' status. */
export function fleetSubscriptions(prefix: string): string[] {
  return [
    `${prefix}/_fleet/stagger/+`,
    `${prefix}/_fleet/stagger/+/claim/+`,
    `${prefix}/_fleet/stagger/+/member/+`,
    `${prefix}/+/status`,
  ];
}

export class StaggerCoordinator<T extends StaggerItem> {
  private readonly groups = new Map<string, GroupState<T>>();
  private readonly peerStatus = new Map<string, string>();
  private readonly file: JsonStateFile<Record<string, StaggerRecord>>;
  /**
   * After a (re)connect, decisions wait until the retained records and claims had time to arrive;
   * Infinity between a connection and the onConnect that follows it.
   */
  private readyAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly opts: {
      prefix: string;
      host: string;
      stateDir: string;
      groups: Iterable<[string, StaggerConfig]>;
    },
    private readonly mqtt: FleetPublisher,
    private readonly hooks: StaggerHooks<T>,
    private readonly log: Logger,
    /** The session's own view: a request can arrive before the agent's connect handlers ran. */
    private readonly isConnected: () => boolean,
  ) {
    this.file = new JsonStateFile(
      opts.stateDir,
      'stagger.json',
      z.record(z.string(), staggerRecordSchema),
      log,
      "this host's record of its stagger groups",
    );
    const saved = this.file.read({});
    for (const [group] of opts.groups) this.group(group).last = saved[group];
  }

  submit(item: T): void {
    this.group(item.stagger.group).pending.push(item);
    this.kick(item.stagger.group);
  }

  /** Returns true when the message was a fleet or status message. */
  onMessage(topic: string, payload: Buffer): boolean {
    const text = payload.toString('utf8');
    const peer = hostOfTopic(this.opts.prefix, topic, 'status');
    if (peer !== undefined) {
      this.peerStatus.set(peer, text);
      for (const name of this.groups.keys()) this.kick(name);
      return true;
    }
    const fleet = parseFleetTopic(this.opts.prefix, topic);
    if (!fleet) return false;
    const g = this.groups.get(fleet.group);
    if (!g) return true; // a group this host has no action in
    if (fleet.kind === 'record') {
      const rec = text === '' ? undefined : parseJson(staggerRecordSchema, text);
      if (rec) this.learn(fleet.group, rec, true);
    } else if (fleet.kind === 'member') {
      if (text === '') g.members.delete(fleet.host);
      else g.members.add(fleet.host);
    } else if (fleet.host !== this.opts.host) {
      const claim = text === '' ? undefined : parseJson(claimSchema, text);
      if (claim) g.claims.set(fleet.host, { claim, seenAt: Date.now() });
      else g.claims.delete(fleet.host);
      this.kick(fleet.group);
    }
    return true;
  }

  onConnect(): void {
    this.readyAt = Date.now() + Math.max(0, ...[...this.opts.groups].map(([, s]) => s.settle));
    for (const [name, g] of this.groups) {
      g.brokerRecord = undefined;
      this.send(
        memberTopic(this.opts.prefix, name, this.opts.host),
        JSON.stringify({ host: this.opts.host }),
        true,
      );
      // The broker may have restarted without its retained messages: once its retained record had time
      // to arrive, put back what we know if it is newer (the agents republish the group's history).
      const settle = Math.max(...[...this.opts.groups].filter(([n]) => n === name).map(([, s]) => s.settle));
      this.after(settle, () => {
        if (g.last && !sameRecord(newer(g.last, g.brokerRecord), g.brokerRecord))
          this.publishRecord(name, g.last);
      });
      this.kick(name);
    }
  }

  onDisconnect(): void {
    this.readyAt = Number.POSITIVE_INFINITY;
  }

  /** The record of a run this host started (the runner calls it when a health check settles). */
  release(group: string, record: StaggerRecord): void {
    this.learn(group, record, false);
    this.publishRecord(group, record);
  }

  /** The record of the run this host started for request `id`, while it is the group's latest. */
  recordOf(group: string, id: string): StaggerRecord | undefined {
    const last = this.groups.get(group)?.last;
    return last && last.id === id && last.host === this.opts.host ? last : undefined;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const g of this.groups.values()) clearTimeout(g.timer);
  }

  pendingCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.pending.length;
    return n;
  }

  private group(name: string): GroupState<T> {
    let g = this.groups.get(name);
    if (!g) {
      g = {
        last: undefined,
        brokerRecord: undefined,
        claims: new Map(),
        members: new Set(),
        pending: [],
        deciding: false,
        timer: undefined,
        told: new Map(),
      };
      this.groups.set(name, g);
    }
    return g;
  }

  private learn(name: string, rec: StaggerRecord, fromBroker: boolean): void {
    const g = this.group(name);
    if (fromBroker) g.brokerRecord = newer(g.brokerRecord, rec);
    const merged = newer(g.last, rec);
    if (!sameRecord(merged, g.last)) {
      g.last = merged;
      this.save();
    }
    // Someone put back an older record than we know (a restarted broker, a slow peer): heal it.
    if (
      fromBroker &&
      g.last &&
      !sameRecord(g.last, rec) &&
      sameRecord(newer(g.last, rec), g.last) &&
      this.isConnected()
    ) {
      this.publishRecord(name, g.last);
    }
    this.kick(name);
  }

  /** Decide for the head of the group's queue. Re-entered on every event that may change the answer. */
  private kick(name: string): void {
    const g = this.groups.get(name);
    if (!g || g.deciding || this.stopped) return;
    clearTimeout(g.timer);
    const item = g.pending[0];
    if (!item) return;
    const s = item.stagger;
    const now = Date.now();

    if (s.max_wait !== undefined && now - item.acceptedAt > s.max_wait) {
      g.pending.shift();
      g.told.delete(item.id);
      this.hooks.expire(
        item,
        `waited longer than stagger.max_wait (${Math.round(s.max_wait / 1000)} s) for its turn in group ${name}; not run — send it again when the group is free`,
      );
      return this.kick(name);
    }
    const held = heldBy(g.last, this.opts.host);
    if (held) return this.wait(name, item, now + s.interval, held);
    const due = dueAt(g.last, s.interval, now);
    if (due > now) return this.wait(name, item, due, undefined);

    const connected = this.isConnected();
    if (connected && now < this.readyAt) {
      // Connected, but not yet caught up: onConnect kicks every group when the settle has passed.
      if (this.readyAt !== Number.POSITIVE_INFINITY) this.wait(name, item, this.readyAt, undefined, false);
      return;
    }
    if (!connected) {
      // Outage: decide on this host's own record of the group (it includes what peers ran, as last seen),
      // but never while a peer was in the middle of claiming a run we did not see the end of.
      const open = [...g.claims.values()].find((c) => c.claim.host !== this.opts.host);
      if (open)
        return this.wait(
          name,
          item,
          now + s.interval,
          `the broker is unreachable and ${open.claim.host} was claiming a run of group ${name}; waiting to learn how it ended`,
        );
      return this.start(
        name,
        item,
        `the broker was unreachable: decided on this host's own record of group ${name} (last run ${g.last ? `${g.last.at} on ${g.last.host}` : 'none known'})`,
      );
    }
    if (s.require_peers_online) {
      const down = [...g.members].filter((h) => h !== this.opts.host && this.peerStatus.get(h) !== 'online');
      if (down.length > 0)
        return this.wait(
          name,
          item,
          now + s.interval,
          `waiting for ${down.join(', ')} (member of group ${name}) to be online (stagger.require_peers_online)`,
        );
    }
    const open = this.liveClaims(g, s.settle * 3);
    if (open.length > 0) {
      // Someone else is deciding: let them finish (their record or retraction kicks us again).
      const first = open[0]!;
      return this.wait(name, item, Math.max(now + s.settle, first.seenAt + s.settle * 3), undefined, false);
    }
    void this.claim(name, g, item);
  }

  private liveClaims(g: GroupState<T>, ttlMs: number): PeerClaim[] {
    const now = Date.now();
    for (const [host, c] of g.claims) if (now - c.seenAt > ttlMs) g.claims.delete(host);
    return [...g.claims.values()];
  }

  private async claim(name: string, g: GroupState<T>, item: T): Promise<void> {
    g.deciding = true;
    const s = item.stagger;
    const mine: Claim = {
      host: this.opts.host,
      action: item.action,
      id: item.id,
      at: new Date().toISOString(),
    };
    const lastBefore = g.last;
    const topic = claimTopic(this.opts.prefix, name, this.opts.host);
    try {
      // Expiry: a claim of an agent that died mid-decision vanishes by itself.
      await this.mqtt.publish(topic, JSON.stringify(mine), {
        retain: true,
        properties: { messageExpiryInterval: Math.ceil((s.settle * 3) / 1000) },
      });
      await new Promise<void>((resolve) => this.after(s.settle, resolve));
      if (this.stopped) return;
      if (!this.isConnected()) {
        this.log.warn(
          { group: name, id: item.id },
          'lost the broker during the settle window; not deciding now',
        );
        return;
      }
      if (!sameRecord(g.last, lastBefore) && g.last !== lastBefore) {
        this.log.info(
          { group: name, id: item.id, last: g.last },
          'a run of the group started during the settle window; rescheduling',
        );
        return;
      }
      const rivals = this.liveClaims(g, s.settle * 3).map((c) => c.claim);
      const win = winner([mine, ...rivals]);
      if (win?.host !== this.opts.host) {
        this.log.info(
          { group: name, id: item.id, winner: win },
          "lost the tie-break for the group; waiting for the winner's run",
        );
        return;
      }
      this.start(name, item, undefined);
    } catch (err) {
      this.log.warn({ err, group: name }, 'claiming a stagger group failed; will retry');
    } finally {
      g.deciding = false;
      this.send(topic, '', true);
      if (g.pending[0] === item) this.wait(name, item, Date.now() + s.settle, undefined, false);
      else this.kick(name);
    }
  }

  private start(name: string, item: T, note: string | undefined): void {
    const g = this.group(name);
    g.pending.shift();
    g.told.delete(item.id);
    const rec: StaggerRecord = {
      host: this.opts.host,
      action: item.action,
      id: item.id,
      at: new Date().toISOString(),
    };
    if (item.stagger.health) rec.released = false;
    g.last = rec;
    this.save();
    if (this.isConnected()) this.publishRecord(name, rec);
    this.log.info({ group: name, id: item.id, note }, 'starting a staggered run');
    this.hooks.run(item, note);
  }

  /** Re-decide at `runAt`; `tell` publishes `scheduled` when the answer changed (not for the short waits of a decision). */
  private wait(name: string, item: T, runAt: number, reason: string | undefined, tell = true): void {
    const g = this.group(name);
    const told = g.told.get(item.id);
    if (tell && (!told || Math.abs(told.runAt - runAt) > 999 || told.reason !== reason)) {
      g.told.set(item.id, { runAt, reason });
      this.hooks.scheduled(item, new Date(runAt), reason);
    }
    clearTimeout(g.timer);
    g.timer = setTimeout(() => this.kick(name), Math.max(10, runAt - Date.now()));
    // Staggered runs may be hours away: the timer must not keep a stopping agent alive.
    g.timer.unref?.();
  }

  private publishRecord(name: string, rec: StaggerRecord): void {
    this.send(groupTopic(this.opts.prefix, name), JSON.stringify(rec), true);
  }

  private send(topic: string, payload: string, retain: boolean): void {
    this.mqtt
      .publish(topic, payload, { retain })
      .catch((err: unknown) => this.log.warn({ err, topic }, 'could not publish a stagger message'));
  }

  private after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private save(): void {
    const data: Record<string, StaggerRecord> = {};
    for (const [k, g] of this.groups) if (g.last) data[k] = g.last;
    this.file.write(data);
  }
}
