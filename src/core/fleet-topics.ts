/**
 * Fleet coordination topics (docs/stagger.md § Topics): the one place that knows their shapes —
 * building, parsing, what an agent subscribes to and what a broker ACL lets it write.
 *
 * Every fleet topic an agent writes ends in its own host id, so a broker ACL can give each agent
 * only its own (docs/security.md). The writer's host is always the LAST level: a topic that parses
 * is attributed to the host its last level names, never to anything else in it.
 */
import { ACTION_NAME_RE, HOST_ID_RE } from './names.js';

/** The per-host record kinds of a stagger group. */
export type StaggerTopicKind = 'last' | 'claim' | 'member';
const KINDS: readonly StaggerTopicKind[] = ['last', 'claim', 'member'];

/** `P/_fleet/stagger/GROUP/KIND/HOST`: HOST's own record of that kind in GROUP. */
export const staggerTopic = (prefix: string, group: string, kind: StaggerTopicKind, host: string) =>
  `${prefix}/_fleet/stagger/${group}/${kind}/${host}`;

/** `P/_fleet/stagger/GROUP/last/HOST`: HOST's last run in GROUP. */
export const lastTopic = (prefix: string, group: string, host: string) =>
  staggerTopic(prefix, group, 'last', host);
export const claimTopic = (prefix: string, group: string, host: string) =>
  staggerTopic(prefix, group, 'claim', host);
export const memberTopic = (prefix: string, group: string, host: string) =>
  staggerTopic(prefix, group, 'member', host);

/**
 * Which stagger record this topic holds, and whose it is. Anything else under `P/_fleet/` —
 * including the shared `P/_fleet/stagger/GROUP` of the previous layout — is not one.
 */
export function parseFleetTopic(
  prefix: string,
  topic: string,
): { kind: StaggerTopicKind; group: string; host: string } | undefined {
  const head = `${prefix}/_fleet/stagger/`;
  if (!topic.startsWith(head)) return undefined;
  const parts = topic.slice(head.length).split('/');
  if (parts.length !== 3) return undefined;
  const [group, kind, host] = parts as [string, string, string];
  if (!ACTION_NAME_RE.test(group) || !HOST_ID_RE.test(host)) return undefined;
  const k = KINDS.find((x) => x === kind);
  return k ? { kind: k, group, host } : undefined;
}

/** What an agent with staggered actions subscribes to; members first, so they arrive before records. */
export function staggerSubscriptions(prefix: string): string[] {
  return [
    `${prefix}/_fleet/stagger/+/member/+`,
    `${prefix}/_fleet/stagger/+/last/+`,
    `${prefix}/_fleet/stagger/+/claim/+`,
  ];
}

/** An agent reads every fleet topic. */
export const fleetReadFilter = (prefix: string) => `${prefix}/_fleet/#`;

/**
 * The fleet topics host H may write: those that END in H, one to three levels below `P/_fleet/`.
 * MQTT filters cannot say "ends with", so each depth is its own filter: `…/stagger/G/last/H` is the
 * deepest today; `P/_fleet/+/H` and `P/_fleet/+/+/H` leave room for per-host fleet topics such as
 * published group membership, without a change to any broker's ACL.
 */
export function fleetWriteFilters(prefix: string, host: string): string[] {
  return [`${prefix}/_fleet/+/${host}`, `${prefix}/_fleet/+/+/${host}`, `${prefix}/_fleet/+/+/+/${host}`];
}

/** `P/_fleet/groups/HOST`: the groups HOST declares (docs/fleet.md § Groups). */
export const groupsTopic = (prefix: string, host: string) => `${prefix}/_fleet/groups/${host}`;

/** What the CLI subscribes to, to learn every host's groups. */
export const groupsFilter = (prefix: string) => `${prefix}/_fleet/groups/+`;

/** The host a groups topic belongs to (its last level), or undefined when it is not one. */
export function parseGroupsTopic(prefix: string, topic: string): string | undefined {
  const head = `${prefix}/_fleet/groups/`;
  if (!topic.startsWith(head)) return undefined;
  const host = topic.slice(head.length);
  return HOST_ID_RE.test(host) ? host : undefined;
}
