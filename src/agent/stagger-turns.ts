/**
 * Whose turn it is in each stagger group: this host's pending requests per group, and the decision for
 * the head of each queue — give up, wait, claim the group or (while the broker is unreachable) start on
 * this host's own record (docs/stagger.md). A request that cannot be decided safely waits rather than
 * runs. Its own module because deciding is one concern; the coordinator (stagger.ts) only keeps the
 * group state current from what arrives, and calls kick() whenever that may change the answer.
 */
import type { ActionConfig } from '../config/schema.js';
import { dueAt, groupLast, heldBy, holdLapsed, type StaggerRecord } from '../core/stagger.js';
import type { Logger } from '../log.js';
import { claimLifetime, settleClaim } from './stagger-claim.js';
import { emptyGroupView, type FleetIntake, type GroupView, type PeerClaim } from './stagger-intake.js';
import type { StaggerOutbox } from './stagger-outbox.js';
import type { StaggerStore } from './stagger-store.js';

export type StaggerConfig = NonNullable<ActionConfig['stagger']>;

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

export class StaggerTurns<T extends StaggerItem> {
  readonly groups = new Map<string, GroupState<T>>();
  /**
   * After a (re)connect, decisions wait until the retained records and claims had time to arrive;
   * Infinity between a connection and the onConnect that follows it.
   */
  readyAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly host: string,
    private readonly intake: FleetIntake,
    private readonly outbox: StaggerOutbox,
    private readonly store: StaggerStore,
    private readonly hooks: StaggerHooks<T>,
    private readonly log: Logger,
    /** The session's own view: a request can arrive before the agent's connect handlers ran. */
    private readonly isConnected: () => boolean,
  ) {}

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

  group(name: string): GroupState<T> {
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

  /** Runs `fn` after `ms`, unless stop() came first. */
  after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** Decide for the head of the group's queue. Re-entered on every event that may change the answer. */
  kick(name: string): void {
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
    const held = heldBy(last, this.host);
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
      const open = [...g.claims.values()].find((c) => c.claim.host !== this.host);
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
      const down = [...g.members].filter((h) => h !== this.host && !this.intake.isOnline(h));
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
    try {
      const won = await settleClaim(
        {
          host: this.host,
          outbox: this.outbox,
          log: this.log,
          isConnected: () => this.isConnected(),
          after: (ms, fn) => this.after(ms, fn),
        },
        name,
        g,
        item,
        s,
        () => !this.stopped && g.pending.includes(item),
      );
      if (won) this.start(name, item, note);
    } catch (err) {
      this.log.warn({ err, group: name }, 'claiming a stagger group failed; will retry');
    } finally {
      g.deciding = false;
      g.own = undefined;
      this.outbox.retract(name);
      if (g.pending[0] === item) this.wait(name, item, Date.now() + s.settle, undefined, false);
      else this.kick(name);
    }
  }

  private start(name: string, item: T, note: string | undefined): void {
    const g = this.group(name);
    g.pending.shift();
    g.told.delete(item.id);
    const rec: StaggerRecord = {
      host: this.host,
      action: item.action,
      id: item.id,
      at: new Date().toISOString(),
    };
    if (item.stagger.health || item.holds) rec.released = false;
    g.records.set(this.host, rec);
    this.store.write(this.groups);
    if (this.isConnected()) this.outbox.own(name, rec);
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
}
