/**
 * `homelab-cmd status` reads what other hosts wrote: every retained status, heartbeat and last result is
 * hostile until checked (docs/security.md § What `homelab-cmd status` prints). A malformed one costs
 * only its own host's row, which says what is wrong; what reaches the terminal is made printable here.
 */
import { z } from 'zod';
import { HOST_ID_RE } from '../core/names.js';
import { hostOfTopic } from '../core/topics.js';

/** A retained message larger than this is not parsed: no heartbeat of ours comes near it. */
export const MAX_STATUS_MESSAGE_BYTES = 256 * 1024;
/** Longest text printed in one table cell. */
export const MAX_CELL = 80;

const count = z.number().int().nonnegative();
const usage = z.object({ used: z.number().nonnegative(), total: z.number().nonnegative() });
const text = (max: number) => z.string().max(max);
const figures = z.object({
  count,
  succeeded: count,
  failed: count,
  timed_out: count,
  interrupted: count.optional(),
  rejected: count,
  p50_ms: z.number().nonnegative().nullable(),
  p95_ms: z.number().nonnegative().nullable(),
  samples: count.optional(),
  last_status: text(32).nullable(),
  last_at: text(64).nullable(),
});

/**
 * What status shows of a heartbeat (docs/mqtt-api.md § Status and heartbeat). Unknown fields are dropped,
 * so `--json` never echoes someone's deeply nested extra field.
 */
const heartbeatSchema = z.object({
  ts: text(64),
  host: text(64).optional(),
  version: text(64).optional(),
  uptime_s: z.number().nonnegative().optional(),
  load: z.tuple([z.number(), z.number(), z.number()]),
  memory: usage,
  disk: usage,
  running: count,
  queued: count.optional(),
  pending_results: count.optional(),
  stats: z.record(text(32), z.number()).optional(),
  actions: z.record(text(128), figures).optional(),
  insecure: z.literal(true).optional(),
});
export type HeartbeatView = z.infer<typeof heartbeatSchema>;
export type ActionFiguresView = z.infer<typeof figures>;

const lastResultSchema = z.object({
  id: text(64),
  host: text(64),
  action: text(64).nullable(),
  status: text(32),
  exit_code: z.number().optional(),
  error_code: text(32).optional(),
  completed_at: text(64).optional(),
});
export type LastResultView = z.infer<typeof lastResultSchema>;

export interface HostRow {
  host: string;
  status: string;
  heartbeat?: HeartbeatView;
  last?: LastResultView;
  /** What was wrong with this host's retained messages, one entry per topic. */
  errors?: string[];
}

type Leaf = 'status' | 'heartbeat' | 'result';

/** Folds one retained message into the rows. Never throws: a bad message becomes its row's error. */
export function applyMessage(
  rows: Map<string, HostRow>,
  prefix: string,
  topic: string,
  payload: Buffer,
): void {
  let host: string | undefined;
  let leaf: Leaf | undefined;
  for (const l of ['status', 'heartbeat', 'result'] as const) {
    host = hostOfTopic(prefix, topic, l);
    if (host !== undefined) {
      leaf = l;
      break;
    }
  }
  if (host === undefined || leaf === undefined || host === '_fleet') return;
  const row = rows.get(host) ?? { host, status: 'unknown' };
  rows.set(host, row);
  const fail = (what: string) => setError(row, leaf, `${leaf}: ${what}`);
  if (!HOST_ID_RE.test(host)) setError(row, 'host', 'host: the topic names no valid host id');
  if (payload.length > MAX_STATUS_MESSAGE_BYTES)
    return fail(`${payload.length} bytes, more than the ${MAX_STATUS_MESSAGE_BYTES} read`);
  const body = payload.toString('utf8');
  if (leaf === 'status') {
    // Kept short: --json prints it as it is (JSON escapes controls), the table through printable().
    row.status = body.slice(0, 4 * MAX_CELL);
    if (body !== 'online' && body !== 'offline') fail('neither "online" nor "offline"');
    else clearError(row, leaf);
    return;
  }
  // An empty retained payload clears the topic.
  if (body === '') {
    if (leaf === 'heartbeat') delete row.heartbeat;
    else delete row.last;
    return clearError(row, leaf);
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    if (leaf === 'heartbeat') delete row.heartbeat;
    else delete row.last;
    return fail('not valid JSON');
  }
  const parsed = (leaf === 'heartbeat' ? heartbeatSchema : lastResultSchema).safeParse(json);
  if (!parsed.success) {
    if (leaf === 'heartbeat') delete row.heartbeat;
    else delete row.last;
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.slice(0, 4).join('.') : 'the message';
    return fail(`${where}: ${issue?.message ?? 'unexpected content'}`);
  }
  if (leaf === 'heartbeat') row.heartbeat = parsed.data as HeartbeatView;
  else row.last = parsed.data as LastResultView;
  const claimed = (parsed.data as { host?: string }).host;
  if (claimed !== undefined && claimed !== host) return fail(`names host "${claimed}", not its topic's`);
  clearError(row, leaf);
}

function setError(row: HostRow, leaf: Leaf | 'host', error: string): void {
  row.errors = [...(row.errors ?? []).filter((e) => !e.startsWith(`${leaf}:`)), error];
}

function clearError(row: HostRow, leaf: Leaf): void {
  if (!row.errors) return;
  const kept = row.errors.filter((e) => !e.startsWith(`${leaf}:`));
  if (kept.length > 0) row.errors = kept;
  else delete row.errors;
}

/**
 * Text another host wrote, safe for a terminal: without C0/C1 controls (escape sequences), bidi controls
 * (U+202A–202E, U+2066–2069, U+200E/F, U+061C), zero-width characters (U+200B–200D, U+2060, U+FEFF) and
 * line separators (U+2028/2029); at most `max` characters.
 */
export function printable(s: string, max = MAX_CELL): string {
  const out: string[] = [];
  for (const ch of s) {
    if (isHidden(ch.codePointAt(0) ?? 0)) continue;
    if (out.length === max) return `${out.slice(0, -1).join('')}…`;
    out.push(ch);
  }
  return out.join('');
}

function isHidden(c: number): boolean {
  return (
    c <= 0x1f ||
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x061c ||
    (c >= 0x200b && c <= 0x200f) ||
    (c >= 0x2028 && c <= 0x202e) ||
    (c >= 0x2060 && c <= 0x2069) ||
    c === 0xfeff
  );
}
