/**
 * Fleet-wide stagger, the pure part: records, claims and the decisions made
 * from them. The protocol itself is described in docs/stagger.md.
 */
import { z } from 'zod';
import { ACTION_NAME_RE, HOST_ID_RE, REQUEST_ID_RE } from './names.js';
import { parseBoundedJson } from './json.js';

/** `P/_fleet/stagger/GROUP`: the group's last run (CONTRACT.md § Topics), plus whether it released the group. */
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

/** A fleet record another host wrote: depth-bounded before parsing, like every payload from the wire. */
export function parseJson<T>(schema: z.ZodType<T>, text: string): T | undefined {
  const json = parseBoundedJson(text);
  if (!json.ok) return undefined;
  const r = schema.safeParse(json.value);
  return r.success ? r.data : undefined;
}

export const groupTopic = (prefix: string, group: string) => `${prefix}/_fleet/stagger/${group}`;
export const claimTopic = (prefix: string, group: string, host: string) =>
  `${prefix}/_fleet/stagger/${group}/claim/${host}`;
export const memberTopic = (prefix: string, group: string, host: string) =>
  `${prefix}/_fleet/stagger/${group}/member/${host}`;

/** Which fleet topic this is: the group record, a claim, or a membership. */
export function parseFleetTopic(
  prefix: string,
  topic: string,
): { kind: 'record'; group: string } | { kind: 'claim' | 'member'; group: string; host: string } | undefined {
  const head = `${prefix}/_fleet/stagger/`;
  if (!topic.startsWith(head)) return undefined;
  const parts = topic.slice(head.length).split('/');
  const [group, kind, host] = parts;
  if (!group || !ACTION_NAME_RE.test(group)) return undefined;
  if (parts.length === 1) return { kind: 'record', group };
  if (parts.length === 3 && (kind === 'claim' || kind === 'member') && host && HOST_ID_RE.test(host))
    return { kind, group, host };
  return undefined;
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
