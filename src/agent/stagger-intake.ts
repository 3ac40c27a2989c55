/**
 * What comes in on the fleet topics, checked before it counts (docs/stagger.md § Topics): a record
 * counts only when the host its topic ends in wrote it about itself, it is not dated in the future
 * beyond the clock skew, and that host is a member. Anything else is ignored — never counted, saved
 * or republished — and logged once. The coordinator decides on what this keeps.
 */
import {
  claimSchema,
  memberSchema,
  newer,
  parseJson,
  sameRecord,
  staggerRecordSchema,
  whyIgnored,
  type Claim,
  type StaggerRecord,
} from '../core/stagger.js';
import type { StaggerTopicKind } from '../core/fleet-topics.js';
import type { Logger } from '../log.js';

export interface PeerClaim {
  claim: Claim;
  seenAt: number;
  /** Its place in the order this host received claims in (docs/stagger.md § The protocol, step 8). */
  seq: number;
}

/** This host's own open claim, and when the broker sent it back: the point its tie-break is taken at. */
export interface OwnClaim {
  id: string;
  at: string;
  seq?: number;
  echoed?: () => void;
}

/** What this host knows of one stagger group's records. */
export interface GroupView {
  /** The records that count, by host: this host's own and its members' (docs/stagger.md § Topics). */
  records: Map<string, StaggerRecord>;
  /** Well-formed records of hosts that are not (yet) members: never counted, saved or republished. */
  unverified: Map<string, StaggerRecord>;
  /** This host's own record as the broker holds it, since we (re)connected. */
  brokerOwn: StaggerRecord | undefined;
  claims: Map<string, PeerClaim>;
  /** Claims of hosts that are not (yet) members: they count once the membership arrives. */
  unverifiedClaims: Map<string, PeerClaim>;
  members: Set<string>;
  own: OwnClaim | undefined;
}

export const emptyGroupView = (): GroupView => ({
  records: new Map(),
  unverified: new Map(),
  brokerOwn: undefined,
  claims: new Map(),
  unverifiedClaims: new Map(),
  members: new Set(),
  own: undefined,
});

/** Hosts tracked per group and per map: a flood of made-up host ids cannot grow memory without bound. */
const MAX_HOSTS = 1000;
/** An ignored record is logged once per topic in this time, however often it is sent. */
const IGNORE_LOG_MS = 10 * 60_000;

export class FleetIntake {
  private readonly peerStatus = new Map<string, string>();
  /** Since when each peer has not been online, as this host saw it (for stagger.max_hold). */
  private readonly downSince = new Map<string, number>();
  private readonly loggedAt = new Map<string, number>();
  /** Claims received so far, this host's own echoes included: the order one broker delivers them in. */
  private arrivals = 0;

  constructor(
    private readonly me: string,
    private readonly log: Logger,
    private readonly hooks: {
      save(): void;
      publishOwn(group: string, rec: StaggerRecord): void;
      isConnected(): boolean;
    },
  ) {}

  isOnline(host: string): boolean {
    return this.peerStatus.get(host) === 'online';
  }

  onStatus(peer: string, text: string): void {
    if (!this.peerStatus.has(peer) && this.peerStatus.size >= MAX_HOSTS * 4) return;
    this.peerStatus.set(peer, text);
    if (text === 'online') this.downSince.delete(peer);
    else if (!this.downSince.has(peer)) this.downSince.set(peer, Date.now());
  }

  /** Whether `host` is online, and else for how long it has not been (as far as this host saw). */
  liveness(host: string, now: number): { online: boolean; downForMs: number } {
    if (this.peerStatus.get(host) === 'online') return { online: true, downForMs: 0 };
    let since = this.downSince.get(host);
    if (since === undefined) this.downSince.set(host, (since = now)); // never seen: from now on
    return { online: false, downForMs: now - since };
  }

  /** `…/last/HOST`: HOST's last run. Counted only when HOST wrote it, about itself, as a member. */
  onRecord(name: string, g: GroupView, host: string, text: string): void {
    const me = this.me;
    if (text === '') {
      // Its owner deleted it (only the owner can, with the ACL): forget it, and never put it back.
      g.unverified.delete(host);
      if (host === me) g.brokerOwn = undefined;
      if (g.records.delete(host)) {
        this.log.info({ group: name, host }, 'a stagger record was deleted by its owner; forgetting it');
        this.hooks.save();
      }
      return;
    }
    const rec = parseJson(staggerRecordSchema, text);
    const why = rec ? whyIgnored(host, rec, Date.now()) : 'it is not a valid record';
    if (!rec || why) {
      // Someone else wrote on our own topic (possible only without an ACL): everyone ignores it, so
      // put our true record back where the others look for it.
      const mine = g.records.get(me);
      if (host === me && mine && this.hooks.isConnected()) this.hooks.publishOwn(name, mine);
      return this.ignore(name, 'last', host, why);
    }
    if (host === me) {
      g.brokerOwn = rec;
      const mine = g.records.get(me);
      const merged = newer(mine, rec) ?? rec;
      // A newer run of ours than we remember (state_dir lost): take it. An older one (a broker that
      // restarted, a stale copy): put ours back.
      if (!sameRecord(merged, mine)) {
        g.records.set(me, merged);
        this.hooks.save();
      } else if (mine && !sameRecord(mine, rec) && this.hooks.isConnected())
        this.hooks.publishOwn(name, mine);
      return;
    }
    if (!g.members.has(host)) {
      if (g.unverified.has(host) || g.unverified.size < MAX_HOSTS) g.unverified.set(host, rec);
      return this.ignore(
        name,
        'last',
        host,
        `${host} is not a member of group ${name} (no valid member record)`,
      );
    }
    this.learnPeer(name, g, host, rec);
  }

  private learnPeer(name: string, g: GroupView, host: string, rec: StaggerRecord): void {
    const known = g.records.get(host);
    const merged = newer(known, rec) ?? rec;
    if (sameRecord(merged, known)) return;
    g.records.set(host, merged);
    if (g.records.size > MAX_HOSTS) g.records.delete(host);
    else this.hooks.save();
  }

  /** `…/member/HOST`: HOST has an action in the group. Its records count from now on. */
  onMember(name: string, g: GroupView, host: string, text: string): void {
    if (text === '') {
      g.members.delete(host);
      g.unverified.delete(host);
      g.unverifiedClaims.delete(host);
      g.claims.delete(host);
      if (host !== this.me && g.records.delete(host)) this.hooks.save();
      return;
    }
    const m = parseJson(memberSchema, text);
    const why = m ? whyIgnored(host, m, Date.now()) : 'it is not a valid member record';
    if (why) return this.ignore(name, 'member', host, why);
    if (!g.members.has(host) && g.members.size >= MAX_HOSTS)
      return this.ignore(name, 'member', host, `group ${name} already has ${MAX_HOSTS} members`);
    g.members.add(host);
    const pending = g.unverified.get(host);
    g.unverified.delete(host);
    if (pending) this.learnPeer(name, g, host, pending);
    const claim = g.unverifiedClaims.get(host);
    g.unverifiedClaims.delete(host);
    if (claim) g.claims.set(host, claim);
  }

  /** `…/claim/HOST`: HOST intends to start a run now. */
  onClaim(name: string, g: GroupView, host: string, text: string): void {
    g.unverifiedClaims.delete(host);
    const claim = text === '' ? undefined : parseJson(claimSchema, text);
    const why =
      text === '' ? undefined : claim ? whyIgnored(host, claim, Date.now()) : 'it is not a valid claim';
    if (!claim || why || (!g.claims.has(host) && g.claims.size >= MAX_HOSTS)) {
      g.claims.delete(host);
      if (why) this.ignore(name, 'claim', host, why);
      return;
    }
    if (!g.members.has(host)) {
      // Kept aside, as records are: a member's claim may arrive just before its membership does.
      if (g.unverifiedClaims.size < MAX_HOSTS)
        g.unverifiedClaims.set(host, { claim, seenAt: Date.now(), seq: ++this.arrivals });
      return this.ignore(name, 'claim', host, `${host} is not a member of group ${name}`);
    }
    g.claims.set(host, { claim, seenAt: Date.now(), seq: ++this.arrivals });
  }

  /** `…/claim/ME` coming back from the broker: every claim it took before this one has arrived by now. */
  onOwnClaim(g: GroupView, text: string): void {
    const claim = text === '' ? undefined : parseJson(claimSchema, text);
    const own = g.own;
    if (!claim || !own || own.seq !== undefined || claim.id !== own.id || claim.at !== own.at) return;
    own.seq = ++this.arrivals;
    own.echoed?.();
  }

  /** An ignored fleet record: never counted, saved or republished; logged once per topic and while. */
  private ignore(name: string, kind: StaggerTopicKind, host: string, why: string | undefined): void {
    this.logOnce(`${kind} ${name} ${host}`, { group: name, kind, host }, `ignoring a fleet record: ${why}`);
  }

  logOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const at = this.loggedAt.get(key);
    if (at !== undefined && now - at < IGNORE_LOG_MS) return;
    if (this.loggedAt.size >= MAX_HOSTS) this.loggedAt.clear();
    this.loggedAt.set(key, now);
    this.log.warn(fields, msg);
  }
}
