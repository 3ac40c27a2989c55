/**
 * Who a client is, beyond its password (docs/security.md § Broker identities): pure rules the
 * embedded broker applies at CONNECT, on every PUBLISH and on every delivery.
 *
 * - An agent account connects only with its own client id, and nobody else may use an agent's
 *   client id: a persistent session (and the signed commands queued in it) belongs to one account.
 * - A last will is a deferred PUBLISH: it is checked like one, at CONNECT and when it goes out.
 * - A discovery config an agent retains may name only its own HA device and entities.
 * - A command carries the name of the account that sent it, set by the broker, never by the sender.
 */
import { entitySlug } from '../core/discovery-names.js';
import { AUTHENTICATED_USER_PROPERTY } from '../core/sender.js';
import { commandFilters } from '../core/topics.js';
import { mayPublish, topicMatches, type AclContext, type Role } from './acl.js';

export interface IdentityUser {
  username: string;
  role: 'agent' | 'controller';
  host?: string | undefined;
  /** The agent's mqtt.client_id, when it sets one; else `homelab-cmd-<host>`. */
  clientId?: string | undefined;
}

/** A discovery config is small JSON: anything bigger is refused unread. */
const MAX_DISCOVERY_CONFIG = 64 * 1024;

export class Identities {
  /** client id → the agent account that owns it. */
  private readonly owners = new Map<string, string>();
  /** agent account → the one client id it may use. */
  private readonly ownIds = new Map<string, string>();
  private readonly agentRoles = new Map<string, Role>();

  constructor(users: readonly IdentityUser[]) {
    for (const u of users) {
      if (u.role !== 'agent' || u.host === undefined) continue;
      const conventional = `homelab-cmd-${u.host}`;
      const own = u.clientId ?? conventional;
      this.ownIds.set(u.username, own);
      // Both the conventional id and a configured one are the agent's: nobody else may take either.
      this.owners.set(conventional, u.username);
      this.owners.set(own, u.username);
      this.agentRoles.set(own, { role: 'agent', host: u.host });
      this.agentRoles.set(conventional, { role: 'agent', host: u.host });
    }
  }

  /** Why `username` may not connect as `clientId`, or undefined when it may. */
  refuseClientId(username: string, role: Role, clientId: string): string | undefined {
    if (role.role === 'agent') {
      const own = this.ownIds.get(username);
      if (clientId === own) return undefined;
      return `agent account ${username} must connect with client id ${own ?? `homelab-cmd-${role.host}`}`;
    }
    const owner = this.owners.get(clientId);
    if (owner !== undefined) return `client id ${clientId} belongs to agent account ${owner}`;
    return undefined;
  }

  /**
   * The role a will was set under, from its client id alone (clustered: the node that checked it at
   * CONNECT is dead). Agent accounts use only their own ids, so any other id was a controller's.
   */
  roleOfClientId(clientId: string): Role {
    return this.agentRoles.get(clientId) ?? { role: 'controller' };
  }
}

/** Why `role` may not leave this will, or undefined when it may. */
export function refuseWill(
  role: Role,
  will: { topic: string; payload: Buffer | string },
  ctx: AclContext,
): string | undefined {
  if (!mayPublish(role, will.topic, ctx)) return `its last will on ${will.topic} is outside its role`;
  return refuseDiscovery(role, will.topic, will.payload, ctx);
}

/** The long keys the discovery check reads, and HA's abbreviation of each (homeassistant/components/mqtt/abbreviations.py). */
const ABBREVIATED = new Map([
  ['components', 'cmps'],
  ['unique_id', 'uniq_id'],
  ['default_entity_id', 'def_ent_id'],
  ['object_id', 'obj_id'],
  ['device', 'dev'],
  ['identifiers', 'ids'],
  ['connections', 'cns'],
]);

/**
 * The ACL keeps an agent on `<discovery>/+/<its host>/#`, but the payload could still put an entity
 * on another host's device (`homelab_cmd_<other>`) or take another host's unique id or entity id.
 * A config is bound to its topic `<discovery>/<component>/<host>/<object>/config`: its unique_id is
 * exactly `homelab_cmd_<host>_<object>` (a prefix test would let host `a` take host `a_b`'s ids), its
 * device only `homelab_cmd_<host>`. An empty payload (clearing a config) is always fine.
 */
export function refuseDiscovery(
  role: Role,
  topic: string,
  payload: Buffer | string,
  ctx: AclContext,
): string | undefined {
  if (role.role !== 'agent' || !topicMatches(`${ctx.discoveryPrefix}/#`, topic)) return undefined;
  const size = Buffer.byteLength(payload);
  if (size === 0 || !topic.endsWith('/config')) return undefined;
  const levels = topic.slice(ctx.discoveryPrefix.length + 1).split('/');
  const [component, host, object] = levels;
  if (levels.length !== 4 || host !== role.host || !component || !object)
    return `a discovery config on ${topic}: agents publish only <discovery>/<component>/${role.host}/<object>/config`;
  if (size > MAX_DISCOVERY_CONFIG) return `a discovery config over ${MAX_DISCOVERY_CONFIG} bytes`;
  let config: unknown;
  try {
    config = JSON.parse(payload.toString());
  } catch {
    return 'a discovery config that is not JSON';
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    return 'a discovery config that is not a JSON object';
  const c = new Map(Object.entries(config));
  // HA expands each abbreviation over its long form: a config naming both could pass the check with
  // one and reach HA with the other, so it is refused (docs/security.md § Broker identities).
  const both = [...c.keys()].filter((k) => ABBREVIATED.has(k) && c.has(ABBREVIATED.get(k)!));
  if (both.length > 0) return `both a key and its abbreviation: ${both.join(', ')}`;
  const one = (long: string, short: string) => c.get(long) ?? c.get(short);
  const own = `homelab_cmd_${host}`;
  // The form the agent publishes (core/discovery-names.ts entitySlug): HA's own slugify of it.
  const entity = entitySlug(`${host}_${object}`);
  // HA's device-based discovery (`components`) names many entities at once: agents never use it.
  if (one('components', 'cmps') !== undefined) return 'device-based discovery (components)';
  const uniqueId = one('unique_id', 'uniq_id');
  if (uniqueId !== undefined && uniqueId !== `${own}_${object}`)
    return `unique_id ${JSON.stringify(uniqueId)} is not ${own}_${object}`;
  const entityId = one('default_entity_id', 'def_ent_id');
  if (entityId !== undefined && entityId !== `${component}.${entity}`)
    return `default_entity_id ${JSON.stringify(entityId)} is not ${component}.${entity}`;
  const objectId = one('object_id', 'obj_id');
  if (objectId !== undefined && objectId !== entity)
    return `object_id ${JSON.stringify(objectId)} is not ${entity}`;
  const device = one('device', 'dev');
  if (device === undefined) return undefined;
  if (typeof device !== 'object' || device === null) return 'a device that is not an object';
  const d = new Map(Object.entries(device));
  const twice = [...d.keys()].filter((k) => ABBREVIATED.has(k) && d.has(ABBREVIATED.get(k)!));
  if (twice.length > 0) return `both a device key and its abbreviation: ${twice.join(', ')}`;
  const ids = d.get('identifiers') ?? d.get('ids');
  if ([ids ?? []].flat().some((id) => id !== own))
    return `device identifiers ${JSON.stringify(ids)} other than ${own}`;
  // A device is also matched by its connections (MAC addresses): an agent has no business naming any.
  if ((d.get('connections') ?? d.get('cns')) !== undefined) return 'device connections';
  return undefined;
}

type UserProperties = Record<string, string | string[]>;

/** The command's user properties with the broker's stamp, and any stamp the sender set removed. */
export function stampUser(properties: { userProperties?: UserProperties } | undefined, username: string) {
  const userProperties: UserProperties = {};
  for (const [k, v] of Object.entries(properties?.userProperties ?? {}))
    if (k !== AUTHENTICATED_USER_PROPERTY) userProperties[k] = v;
  userProperties[AUTHENTICATED_USER_PROPERTY] = username;
  return { ...properties, userProperties };
}

/** Topics where a sender's identity matters: commands and param changes (docs/mqtt-api.md). */
export function isCommandTopic(topic: string, ctx: AclContext): boolean {
  return commandFilters(ctx.prefix).some((f) => topicMatches(f, topic));
}
