/**
 * Fleet-wide stagger, the pure part: records, claims and the decisions made
 * from them. The protocol itself is described in docs/stagger.md.
 */
import { z } from 'zod';
import { ACTION_NAME_RE, HOST_ID_RE, REQUEST_ID_RE } from './names.js';
import { parseBoundedJson } from './json.js';

/** `P/_fleet/stagger/GROUP/last/HOST`: HOST's last run in the group, plus whether it released the group. */
export const staggerRecordSchema = z.object({
  host: z.string().regex(HOST_ID_RE),
  action: z.string().regex(ACTION_NAME_RE),
  id: z.string().regex(REQUEST_ID_RE),
  at: z.iso.datetime(),
  /** false while a run with a health check has not passed it: the group stays held. Absent = released. */
  released: z.boolean().optional(),
});
export type StaggerRecord = z.infer<typeof staggerRecordSchema>;

/** `P/_fleet/stagger/GROUP/claim/HOST`: "I intend to start a run of GROUP now". */
export const claimSchema = z.object({
  host: z.string().regex(HOST_ID_RE),
  action: z.string().regex(ACTION_NAME_RE),
  id: z.string().regex(REQUEST_ID_RE),
  at: z.iso.datetime(),
});
export type Claim = z.infer<typeof claimSchema>;

/** `P/_fleet/stagger/GROUP/member/HOST`: HOST has an action in GROUP. */
export const memberSchema = z.object({ host: z.string().regex(HOST_ID_RE) });

/**
 * How far in the future a fleet record's `at` may be and still count: the clock skew between two
 * hosts that NTP keeps in sync is far below this. A record dated later is a lie or a broken clock,
 * and it would hold the group until then (docs/stagger.md § Failure cases).
 */
export const MAX_CLOCK_SKEW_MS = 60_000;

/**
 * Why a fleet record found on `topicHost`'s topic must be ignored, or undefined when it may count
 * (membership is checked by the caller, who knows the members). docs/stagger.md § Failure cases.
 */
export function whyIgnored(topicHost: string, payload: { host: string; at?: string }, now: number) {
  if (payload.host !== topicHost)
    return `its payload names host ${payload.host} but it is on ${topicHost}'s topic (only ${topicHost} writes there)`;
  if (payload.at !== undefined && Date.parse(payload.at) > now + MAX_CLOCK_SKEW_MS)
    return `it is dated ${payload.at}, more than ${MAX_CLOCK_SKEW_MS / 1000} s in the future`;
  return undefined;
}

/** A fleet record another host wrote: depth-bounded before parsing, like every payload from the wire. */
export function parseJson<T>(schema: z.ZodType<T>, text: string): T | undefined {
  const json = parseBoundedJson(text);
  if (!json.ok) return undefined;
  const r = schema.safeParse(json.value);
  return r.success ? r.data : undefined;
}

/** The later of two records (by start time; host breaks a tie so every agent picks the same). */
export function newer(a: StaggerRecord | undefined, b: StaggerRecord | undefined): StaggerRecord | undefined {
  if (!a) return b;
  if (!b) return a;
  const d = Date.parse(a.at) - Date.parse(b.at);
  if (d !== 0) return d > 0 ? a : b;
  if (a.host !== b.host) return a.host > b.host ? a : b;
  // Same run: the one that says "released" is the later state of it.
  return a.released === false ? b : a;
}

export function sameRecord(a: StaggerRecord | undefined, b: StaggerRecord | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.host === b.host &&
    a.id === b.id &&
    a.at === b.at &&
    (a.released ?? true) === (b.released ?? true)
  );
}

/**
 * The claim that wins a settle window: the earliest claim, then the lowest host id.
 * Every agent that saw the same claims picks the same one.
 */
export function winner(claims: readonly Claim[]): Claim | undefined {
  return [...claims].sort(
    (a, b) => Date.parse(a.at) - Date.parse(b.at) || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0),
  )[0];
}

/** The group's last run: the newest of its members' own records. */
export function groupLast(records: Iterable<StaggerRecord>): StaggerRecord | undefined {
  let last: StaggerRecord | undefined;
  for (const r of records) last = newer(last, r);
  return last;
}

/** When the group is free for `me` again: never before last start + interval. */
export function dueAt(last: StaggerRecord | undefined, intervalMs: number, now: number): number {
  if (!last) return now;
  return Math.max(now, Date.parse(last.at) + intervalMs);
}

/**
 * Why the group is held regardless of time: a run whose health check has not passed. Only the
 * host that holds it may run again (its own retry is how it recovers).
 */
export function heldBy(last: StaggerRecord | undefined, me: string): string | undefined {
  if (!last || last.released !== false || last.host === me) return undefined;
  return `the group is held: the run of ${last.action} on ${last.host} (id ${last.id}, started ${last.at}) has not passed its health check`;
}

/**
 * A hold without a live owner ends: when its host has not been online for longer than `max_hold`
 * (it died, or never existed), the others proceed — returns the sentence saying so, else undefined.
 * A holder that is online keeps its hold: it is alive and says its service is unhealthy.
 */
export function holdLapsed(
  last: StaggerRecord,
  holder: { online: boolean; downForMs: number },
  maxHoldMs: number,
): string | undefined {
  if (holder.online || holder.downForMs <= maxHoldMs) return undefined;
  return `the group was held by the run of ${last.action} on ${last.host} (id ${last.id}, started ${last.at}), which has not passed its health check, but ${last.host} has not been online for ${Math.round(holder.downForMs / 1000)} s (more than stagger.max_hold, ${Math.round(maxHoldMs / 1000)} s): proceeding without it`;
}

/** `state_dir/stagger.json`: per group, the records this host counts (its own and its members'). */
export const savedStaggerSchema = z.object({
  version: z.literal(2),
  groups: z.record(z.string(), z.record(z.string(), z.unknown())),
});
export type SavedStagger = Record<string, Record<string, StaggerRecord>>;

/**
 * The records of a stagger.json, of this layout or the previous one (`{GROUP: record}`, the newest
 * record of the group whoever wrote it). Every record is checked again as if it had just arrived:
 * one dated in the future, or filed under another host's name, is dropped (`dropped` says why). Of
 * the previous layout only this host's own record is kept: the others may be exactly the poison an
 * older version saved, and each member puts back its own.
 */
export function readSavedStagger(
  data: unknown,
  me: string,
  now: number,
): { groups: SavedStagger; dropped: string[] } {
  // Null prototypes: a group or host named "constructor" is a key like any other, not Object's own.
  const groups: SavedStagger = Object.create(null) as SavedStagger;
  const dropped: string[] = [];
  const keep = (group: string, host: string, value: unknown) => {
    const rec = staggerRecordSchema.safeParse(value);
    const why = rec.success ? whyIgnored(host, rec.data, now) : 'it is not a valid record';
    if (!rec.success || why || !ACTION_NAME_RE.test(group)) {
      dropped.push(`group ${group}, host ${host}: ${why ?? 'not a valid group name'}`);
      return;
    }
    (groups[group] ??= Object.create(null) as SavedStagger[string])[host] = rec.data;
  };
  const v2 = savedStaggerSchema.safeParse(data);
  if (v2.success) {
    for (const [group, hosts] of Object.entries(v2.data.groups))
      for (const [host, value] of Object.entries(hosts)) keep(group, host, value);
  } else if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
    for (const [group, value] of Object.entries(data)) {
      const host = staggerRecordSchema.safeParse(value).data?.host;
      if (host === me) keep(group, me, value);
      else dropped.push(`group ${group}: a record of the previous layout that is not this host's own`);
    }
  } else if (data !== undefined) dropped.push('not a mapping of groups');
  return { groups, dropped };
}
