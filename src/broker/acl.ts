/**
 * The contract's broker roles as pure rules (docs/mqtt-api.md § Broker roles):
 * an `agent` is bound to its host; a `controller` commands any host and reads everything.
 * Anything not granted is refused.
 */
import { fleetWriteFilters } from '../core/fleet-topics.js';
import {
  agentReadFilters,
  commandFilters,
  discoveryHostFilter,
  haStatusTopic,
  hostTopics,
} from '../core/topics.js';

export type Role = { role: 'agent'; host: string } | { role: 'controller' };

export interface AclContext {
  prefix: string;
  discoveryPrefix: string;
}

export interface Grants {
  read: string[];
  write: string[];
  /** Checked before `write`: carve-outs of a wider grant. */
  denyWrite: string[];
}

export function grantsFor(role: Role, ctx: AclContext): Grants {
  const P = ctx.prefix;
  const HA = ctx.discoveryPrefix;
  if (role.role === 'controller') {
    return {
      read: ['#'],
      // Commands and param changes for any host, and HA's birth message.
      write: [...commandFilters(P), haStatusTopic(HA)],
      denyWrite: [],
    };
  }
  const H = role.host;
  return {
    read: agentReadFilters(P, HA, H),
    // `${P}/${H}/#` holds its MQTT 5 replies too (`${P}/${H}/reply/#`): only agent H may write them, so no
    // other account can forge a reply (docs/security.md § Answers that cannot be faked).
    // Fleet topics: only those ending in its own host id (docs/stagger.md § Topics).
    write: [hostTopics(P, H).all, ...fleetWriteFilters(P, H), discoveryHostFilter(HA, H)],
    // An agent never commands itself or sets its own params: only controllers do.
    denyWrite: commandFilters(P, H),
  };
}

export function mayPublish(role: Role, topic: string, ctx: AclContext): boolean {
  const g = grantsFor(role, ctx);
  if (g.denyWrite.some((f) => topicMatches(f, topic))) return false;
  return g.write.some((f) => topicMatches(f, topic));
}

/** May `role` receive a message on `topic`? Re-checked on every delivery (docs/security.md § Broker identities). */
export function mayRead(role: Role, topic: string, ctx: AclContext): boolean {
  return grantsFor(role, ctx).read.some((grant) => topicMatches(grant, topic));
}

export function maySubscribe(role: Role, filter: string, ctx: AclContext): boolean {
  return grantsFor(role, ctx).read.some((grant) => filterCovers(grant, filter));
}

/** Does filter `f` match topic name `t` (MQTT 3.1.1 § 4.7)? */
export function topicMatches(f: string, t: string): boolean {
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with "$".
  if (t.startsWith('$') && (f.startsWith('#') || f.startsWith('+'))) return false;
  const fl = f.split('/');
  const tl = t.split('/');
  for (let i = 0; i < fl.length; i++) {
    const level = fl[i];
    if (level === '#') return true;
    if (i >= tl.length) return false;
    if (level !== '+' && level !== tl[i]) return false;
  }
  return fl.length === tl.length;
}

/** Is every topic matched by `filter` also matched by `grant`? (Subscriptions may use wildcards too.) */
export function filterCovers(grant: string, filter: string): boolean {
  if (filter.startsWith('$share/')) {
    // Shared subscriptions: judge the real filter behind `$share/<group>/`.
    const rest = filter.split('/').slice(2).join('/');
    return rest !== '' && filterCovers(grant, rest);
  }
  if (filter.startsWith('$') && (grant.startsWith('#') || grant.startsWith('+'))) return false;
  const g = grant.split('/');
  const f = filter.split('/');
  for (let i = 0; i < g.length; i++) {
    const gl = g[i];
    if (gl === '#') return true;
    const fl = f[i];
    if (fl === undefined) return false;
    if (fl === '#') return false;
    if (gl === '+') continue;
    if (fl === '+' || fl !== gl) return false;
  }
  return f.length === g.length;
}
