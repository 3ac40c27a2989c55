/**
 * Fleet-wide stagger: a group's runs (any host) start at least `interval`
 * apart, never two at once. MQTT has no compare-and-swap, so a run is decided
 * by claim → settle window → deterministic tie-break → re-read (docs/stagger.md).
 * A request that cannot be decided safely waits rather than runs.
 */
import { z } from 'zod';
import type { ActionConfig } from '../config/schema.js';
import {
  claimTopic,
  lastTopic,
  memberTopic,
  parseFleetTopic,
  staggerSubscriptions,
} from '../core/fleet-topics.js';
import {
  dueAt,
  groupLast,
  heldBy,
  holdLapsed,
  newer,
  readSavedStagger,
  sameRecord,
  winner,
  type Claim,
  type StaggerRecord,
} from '../core/stagger.js';
import { hostOfTopic, hostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import {
  FleetIntake,
  emptyGroupView,
  type GroupView,
  type OwnClaim,
  type PeerClaim,
} from './stagger-intake.js';
import type { Publisher } from './publisher.js';
import { JsonStateFile } from './state-file.js';

export type StaggerConfig = NonNullable<ActionConfig['stagger']>;

/** How long a claim waits for the broker to send it back, at least (else ten settle windows). */
const ECHO_WAIT_MIN_MS = 10_000;
const echoWait = (s: StaggerConfig) => Math.max(10 * s.settle, ECHO_WAIT_MIN_MS);
/**
 * How long a claim counts without its retraction: as long as its host may take to decide (settle, then
 * its echo), and a settle more. A claim of a host that died deciding lapses after it (docs/stagger.md).
 */
const claimLifetime = (s: StaggerConfig) => 2 * s.settle + echoWait(s);

export interface StaggerItem {
  id: string;
  action: string;
  stagger: StaggerConfig;
  /** When the request was accepted (ms), for max_wait. */
  acceptedAt: number;
  /** Holds the group from its start until it releases it, health check or not (a reboot: agent/reboots.ts). */
  holds?: boolean;
}

export interface StaggerHooks<T extends StaggerItem> {
  /** Start it now. `note` says how the decision was made when that matters (an outage). */
  run(item: T, note: string | undefined): void;
  /** Tell the requester when it will run (and why it waits, if not just the interval). */
  scheduled(item: T, runAt: Date, reason: string | undefined): void;
  /** Give up (max_wait ran out): a final rejection. */
  expire(item: T, error: string): void;
}

interface GroupState<T> extends GroupView {
  pending: T[];
  deciding: boolean;
  timer: NodeJS.Timeout | undefined;
  /** The run_at last told to each pending request, so a change is published once. */
  told: Map<string, { runAt: number; reason: string | undefined }>;
}

/** The topic filters an agent with staggered actions subscribes to: members, records, claims, peers' status. */
export function fleetSubscriptions(prefix: string): string[] {
  return [...staggerSubscriptions(prefix), hostTopics(prefix, '+').status];
}

export class StaggerCoordinator<T extends StaggerItem> {
  private readonly groups = new Map<string, GroupState<T>>();
  private readonly intake: FleetIntake;
  private readonly file: JsonStateFile<unknown>;
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
    private readonly mqtt: Publisher,
    private readonly hooks: StaggerHooks<T>,
    private readonly log: Logger,
    /** The session's own view: a request can arrive before the agent's connect handlers ran. */
    private readonly isConnected: () => boolean,
  ) {
    this.intake = new FleetIntake(opts.host, log, {
      save: () => this.save(),
      publishOwn: (group, rec) => this.publishOwn(group, rec),
      isConnected: () => this.isConnected(),
    });
    this.file = new JsonStateFile(
      opts.stateDir,
      'stagger.json',
      z.unknown(),
      log,
      "this host's record of its stagger groups",
    );
  }

  /** Reads this host's saved records of its groups (the constructor does no I/O). */
  open(): void {
    const opts = this.opts;
    // Checked again like records that just arrived: an older version saved whatever it was sent.
    const saved = readSavedStagger(this.file.read(undefined), opts.host, Date.now());
    for (const [group] of opts.groups)
      this.group(group).records = new Map(Object.entries(saved.groups[group] ?? {}));
    if (saved.dropped.length > 0) {
      this.log.warn(
        { file: this.file.file, dropped: saved.dropped },
        'dropped stagger records from state_dir that no longer count (docs/stagger.md § Failure cases)',
      );
      this.save();
    }
  }

  submit(item: T): void {
    this.group(item.stagger.group).pending.push(item);
    this.kick(item.stagger.group);
  }

  /**
   * Takes pending request `id` out of its group (a cancel): it will never start, and the group moves on
   * to the next. A claim being settled for it is dropped (claim() checks the item is still pending).
   */
  withdraw(id: string): T | undefined {
    for (const [name, g] of this.groups) {
      const at = g.pending.findIndex((item) => item.id === id);
      if (at < 0) continue;
      const [item] = g.pending.splice(at, 1);
      g.told.delete(id);
      if (at === 0 && !g.deciding) this.kick(name);
      return item;
    }
    return undefined;
  }

  /** Returns true when the message was a fleet or status message. */
  onMessage(topic: string, payload: Buffer): boolean {
    const text = payload.toString('utf8');
    const peer = hostOfTopic(this.opts.prefix, topic, 'status');
    if (peer !== undefined) {
      this.intake.onStatus(peer, text);
      for (const name of this.groups.keys()) this.kick(name);
      return true;
    }
    const fleet = parseFleetTopic(this.opts.prefix, topic);
    if (!fleet) return false;
    const g = this.groups.get(fleet.group);
    if (!g) return true; // a group this host has no action in
    if (fleet.kind === 'last') this.intake.onRecord(fleet.group, g, fleet.host, text);
    else if (fleet.kind === 'member') this.intake.onMember(fleet.group, g, fleet.host, text);
    else if (fleet.host !== this.opts.host) this.intake.onClaim(fleet.group, g, fleet.host, text);
    else this.intake.onOwnClaim(g, text);
    this.kick(fleet.group);
    return true;
  }

  onConnect(): void {
    this.readyAt = Date.now() + Math.max(0, ...[...this.opts.groups].map(([, s]) => s.settle));
    for (const [name, g] of this.groups) {
      g.brokerOwn = undefined;
      this.send(
        memberTopic(this.opts.prefix, name, this.opts.host),
        JSON.stringify({ host: this.opts.host }),
        true,
      );
      // The broker may have restarted without its retained messages: once its copy of our record had
      // time to arrive, put back our OWN record if the broker lacks it. Each member does the same for
      // its own; nobody republishes another host's record (docs/stagger.md § Durability and outages).
      const settle = Math.max(...[...this.opts.groups].filter(([n]) => n === name).map(([, s]) => s.settle));
      this.after(settle, () => {
        const mine = g.records.get(this.opts.host);
        if (mine && !sameRecord(newer(mine, g.brokerOwn), g.brokerOwn)) this.publishOwn(name, mine);
      });
      this.kick(name);
    }
  }

  onDisconnect(): void {
    this.readyAt = Number.POSITIVE_INFINITY;
  }

  /** The record of a run this host started (the runner calls it when a health check settles). */
  release(group: string, record: StaggerRecord): void {
    if (record.host !== this.opts.host) return;
    const g = this.group(group);
    const mine = newer(g.records.get(this.opts.host), record) ?? record;
    g.records.set(this.opts.host, mine);
    this.save();
    this.publishOwn(group, mine);
    this.kick(group);
  }

  /** The record of the run this host started for request `id`, while it is this host's latest. */
  recordOf(group: string, id: string): StaggerRecord | undefined {
    const own = this.groups.get(group)?.records.get(this.opts.host);
    return own && own.id === id ? own : undefined;
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
        ...emptyGroupView(),
        pending: [],
        deciding: false,
        timer: undefined,
        told: new Map(),
      };
      this.groups.set(name, g);
    }
    return g;
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
    const last = groupLast(g.records.values());
    let note: string | undefined;
    const held = heldBy(last, this.opts.host);
    if (held && last) {
      // A hold without a live owner ends after stagger.max_hold (docs/stagger.md § Failure cases).
      const holder = this.intake.liveness(last.host, now);
      note = holdLapsed(last, holder, s.max_hold);
      if (!note) {
        const lapseAt = holder.online ? Number.POSITIVE_INFINITY : now - holder.downForMs + s.max_hold + 1;
        return this.wait(name, item, Math.min(now + s.interval, lapseAt), held);
      }
      this.intake.logOnce(`hold ${name} ${last.host} ${last.id}`, { group: name, holder: last.host }, note);
    }
    const due = dueAt(last, s.interval, now);
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
        `the broker was unreachable: decided on this host's own record of group ${name} (last run ${last ? `${last.at} on ${last.host}` : 'none known'})${note ? `; ${note}` : ''}`,
      );
    }
    if (s.require_peers_online) {
      const down = [...g.members].filter((h) => h !== this.opts.host && !this.intake.isOnline(h));
      if (down.length > 0)
        return this.wait(
          name,
          item,
          now + s.interval,
          `waiting for ${down.join(', ')} (member of group ${name}) to be online (stagger.require_peers_online)`,
        );
    }
    const open = this.liveClaims(g, claimLifetime(s));
    if (open.length > 0) {
      // Someone else is deciding: let them finish (their record or retraction kicks us again).
      const first = open[0]!;
      return this.wait(
        name,
        item,
        Math.max(now + s.settle, first.seenAt + claimLifetime(s)),
        undefined,
        false,
      );
    }
    void this.claim(name, g, item, note);
  }

  private liveClaims(g: GroupState<T>, ttlMs: number): PeerClaim[] {
    const now = Date.now();
    for (const [host, c] of g.claims) if (now - c.seenAt > ttlMs) g.claims.delete(host);
    return [...g.claims.values()];
  }

  private async claim(name: string, g: GroupState<T>, item: T, note: string | undefined): Promise<void> {
    g.deciding = true;
    const s = item.stagger;
    const mine: Claim = {
      host: this.opts.host,
      action: item.action,
      id: item.id,
      at: new Date().toISOString(),
    };
    const lastBefore = groupLast(g.records.values());
    const topic = claimTopic(this.opts.prefix, name, this.opts.host);
    const own: OwnClaim = { id: mine.id, at: mine.at };
    g.own = own;
    try {
      // Expiry: a claim of an agent that died mid-decision vanishes by itself.
      await this.mqtt.publish(topic, JSON.stringify(mine), {
        retain: true,
        properties: { messageExpiryInterval: Math.ceil(claimLifetime(s) / 1000) },
      });
      await new Promise<void>((resolve) => this.after(s.settle, resolve));
      // And until the broker sent our own claim back: every claim it took before ours has reached us,
      // however slow the machine or the link (docs/stagger.md § The protocol, step 8).
      if (own.seq === undefined)
        await new Promise<void>((resolve) => {
          own.echoed = resolve;
          this.after(echoWait(s), resolve);
        });
      // Stopped, or withdrawn by a cancel meanwhile: the claim is retracted below, nothing starts.
      if (this.stopped || !g.pending.includes(item)) return;
      if (!this.isConnected()) {
        this.log.warn(
          { group: name, id: item.id },
          'lost the broker during the settle window; not deciding now',
        );
        return;
      }
      const lastNow = groupLast(g.records.values());
      if (!sameRecord(lastNow, lastBefore) && lastNow !== lastBefore) {
        this.log.info(
          { group: name, id: item.id, last: lastNow },
          'a run of the group started during the settle window; rescheduling',
        );
        return;
      }
      if (own.seq === undefined) {
        this.log.warn(
          { group: name, id: item.id },
          "the broker did not send this host's claim back; not deciding now",
        );
        return;
      }
      // The first claim the broker took wins: every member receives them in that order, so each decides
      // the same without trusting clocks or the settle window (docs/stagger.md § The protocol, step 8).
      const ownSeq = own.seq;
      const earlier = [...g.claims.values()].filter((c) => c.claim.host !== this.opts.host && c.seq < ownSeq);
      const win = earlier.length > 0 ? winner(earlier.map((c) => c.claim)) : mine;
      if (win?.host !== this.opts.host) {
        this.log.info(
          { group: name, id: item.id, winner: win },
          "lost the tie-break for the group; waiting for the winner's run",
        );
        return;
      }
      this.start(name, item, note);
    } catch (err) {
      this.log.warn({ err, group: name }, 'claiming a stagger group failed; will retry');
    } finally {
      g.deciding = false;
      g.own = undefined;
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
    if (item.stagger.health || item.holds) rec.released = false;
    g.records.set(this.opts.host, rec);
    this.save();
    if (this.isConnected()) this.publishOwn(name, rec);
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

  /** This host's own record, on its own topic: the only record it ever publishes. */
  private publishOwn(name: string, rec: StaggerRecord): void {
    this.send(lastTopic(this.opts.prefix, name, this.opts.host), JSON.stringify(rec), true);
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
    const groups: Record<string, Record<string, StaggerRecord>> = {};
    for (const [k, g] of this.groups) if (g.records.size > 0) groups[k] = Object.fromEntries(g.records);
    this.file.write({ version: 2, groups });
  }
}
