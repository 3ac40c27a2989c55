/**
 * Group membership (docs/fleet.md § Groups): which groups an agent declares, the retained record it
 * publishes on `P/_fleet/groups/H`, and the reader's checks of a record another host wrote. Pure.
 */
import { z } from 'zod';
import { ACTION_NAME_RE, HOST_ID_RE } from './names.js';

/** A record larger than this is not parsed: 256 groups (64 declared plus stagger groups) of 63 characters fit. */
export const MAX_GROUPS_RECORD_BYTES = 32 * 1024;
export const MAX_GROUPS = 256;

/** The record on `P/_fleet/groups/H` (docs/fleet.md § Groups; docs/schema/groups.json). */
export const groupsRecordSchema = z.object({
  host: z.string().regex(HOST_ID_RE),
  groups: z.array(z.string().regex(ACTION_NAME_RE)).max(MAX_GROUPS),
  /** When the agent published it (ms since epoch). */
  ts: z.number(),
});
export type GroupsRecord = z.infer<typeof groupsRecordSchema>;

/** The groups an agent is in: its `groups:` plus every stagger group of its actions, sorted, once each. */
export function agentGroups(
  groups: readonly string[],
  actions: Record<string, { stagger?: { group: string } | undefined }>,
): string[] {
  const all = new Set(groups);
  for (const a of Object.values(actions)) if (a.stagger) all.add(a.stagger.group);
  return [...all].sort();
}

/** The retained payload, stable key order; an agent in no group publishes an empty payload (clears it). */
export function groupsPayload(host: string, groups: readonly string[], now: number): string {
  if (groups.length === 0) return '';
  const record: GroupsRecord = { host, groups: [...groups], ts: now };
  return JSON.stringify(record);
}

export type GroupsRead =
  | { ok: true; record: GroupsRecord }
  | { ok: false; cleared: true }
  | { ok: false; cleared?: false; problem: string };

/**
 * A record another host wrote, hostile until checked: it counts only when its payload names the same
 * host as its topic (only that host's account may write the topic), and every group is a valid name.
 */
export function readGroupsRecord(topicHost: string, payload: Buffer): GroupsRead {
  if (payload.length === 0) return { ok: false, cleared: true };
  if (payload.length > MAX_GROUPS_RECORD_BYTES)
    return { ok: false, problem: `record of ${payload.length} bytes is over ${MAX_GROUPS_RECORD_BYTES}` };
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, problem: 'record is not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return { ok: false, problem: 'record is not a JSON object' };
  const o = v as Record<string, unknown>;
  if (o.host !== topicHost)
    return {
      ok: false,
      problem: `payload host ${typeof o.host === 'string' && HOST_ID_RE.test(o.host) ? o.host : '(invalid)'} differs from the topic's host`,
    };
  const groups = o.groups;
  if (!Array.isArray(groups) || groups.length > MAX_GROUPS)
    return { ok: false, problem: `groups is not a list of at most ${MAX_GROUPS} names` };
  if (!groups.every((g): g is string => typeof g === 'string' && ACTION_NAME_RE.test(g)))
    return { ok: false, problem: `a group name does not match ${ACTION_NAME_RE.source}` };
  const ts = typeof o.ts === 'number' && Number.isFinite(o.ts) ? o.ts : 0;
  return { ok: true, record: { host: topicHost, groups: [...new Set(groups)], ts } };
}
