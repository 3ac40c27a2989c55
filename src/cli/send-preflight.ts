/**
 * What `send` knows before it publishes (docs/mqtt-api.md § homelab-cmd send and status): the host's
 * retained status and heartbeat, and the hosts the broker knows. An offline host is said so (since when,
 * and that the request expires after its ttl); an unknown one — likely a typo — is not sent to at all.
 * Every retained message read here was written by someone else: parsed by status-rows.ts, which never throws.
 */
import type { MqttClient } from 'mqtt';
import { applyMessage, printable, type HostRow } from './status-rows.js';

/** Retained messages arrive right after SUBACK: this long with nothing new means we have them all. */
const QUIET_MS = 300;
/** The longest the read may take, whatever arrives. */
const MAX_MS = 2000;

export interface Presence {
  /** The host's row (status, heartbeat), or undefined when it has no retained status. */
  row: HostRow | undefined;
  /** Every host with a retained status on this broker, sorted. */
  known: string[];
}

/**
 * Reads `P/+/status` and `P/H/heartbeat` (retained), ending as soon as H's status and heartbeat are both in,
 * else after a quiet moment (bounded by MAX_MS). Unsubscribes again: the wait for the result has its own.
 * A refused subscription rejects (the caller turns it into one line: client.ts `refusal`).
 */
export async function readPresence(client: MqttClient, prefix: string, host: string): Promise<Presence> {
  const rows = new Map<string, HostRow>();
  const statusFilter = `${prefix}/+/status`;
  const heartbeatTopic = `${prefix}/${host}/heartbeat`;
  const statusTopic = `${prefix}/${host}/status`;
  const seen = new Set<string>();
  let quiet: NodeJS.Timeout | undefined;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const bump = () => {
    clearTimeout(quiet);
    quiet = setTimeout(finish, QUIET_MS);
  };
  const cap = setTimeout(finish, MAX_MS);
  const onMessage = (topic: string, payload: Buffer, packet: { retain?: boolean }) => {
    // Only retained messages: a live one is news, not the state this read is after.
    if (!packet.retain || (topic !== heartbeatTopic && !topic.endsWith('/status'))) return;
    applyMessage(rows, prefix, topic, payload);
    seen.add(topic);
    if (seen.has(`${prefix}/${host}/status`) && seen.has(heartbeatTopic)) finish();
    else bump();
  };
  client.on('message', onMessage);
  try {
    await client.subscribeAsync(statusFilter, { qos: 0 });
    // By name too: some brokers (RabbitMQ's MQTT plugin) send retained messages to exact filters only.
    await client.subscribeAsync(statusTopic, { qos: 0 });
    await client.subscribeAsync(heartbeatTopic, { qos: 0 });
    // Nothing may come at all (an empty broker): the quiet window starts at the last SUBACK.
    bump();
    await done;
  } finally {
    clearTimeout(quiet);
    clearTimeout(cap);
    client.removeListener('message', onMessage);
  }
  await client.unsubscribeAsync([statusFilter, statusTopic, heartbeatTopic]).catch(() => undefined);
  const row = rows.get(host);
  const known = [...rows.values()]
    .filter((r) => r.status === 'online' || r.status === 'offline')
    .map((r) => r.host)
    .sort();
  return { row: row && row.status !== 'unknown' ? row : undefined, known };
}

/** Levenshtein distance, for "did you mean" (host ids are at most 63 characters). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(
        (prev[j] ?? 0) + 1,
        (cur[j - 1] ?? 0) + 1,
        (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The known hosts closest to `host`: within a third of its length (at least 2 edits), best first. */
export function didYouMean(host: string, known: readonly string[]): string[] {
  const limit = Math.max(2, Math.floor(host.length / 3));
  return known
    .map((k) => ({ k, d: editDistance(host, k) }))
    .filter(({ d }) => d <= limit)
    .sort((x, y) => x.d - y.d || x.k.localeCompare(y.k))
    .map(({ k }) => k);
}

/** One line for a host nobody has heard of: what the broker does know, and the way to send anyway. */
export function unknownHostLine(host: string, prefix: string, url: string, known: readonly string[]): string {
  const close = didYouMean(host, known);
  const list =
    known.length === 0
      ? 'none'
      : known
          .slice(0, 20)
          .map((h) => printable(h))
          .join(', ');
  const more = known.length > 20 ? ` (and ${known.length - 20} more)` : '';
  return (
    `host ${host} is unknown to the broker at ${url}: it holds no retained ${prefix}/${host}/status this login can read (no agent of that name has connected there, or the broker's ACL hides it from this login) — ` +
    `${close.length > 0 ? `did you mean ${close.map((h) => printable(h)).join(' or ')}? ` : ''}` +
    `known hosts: ${list}${more}. Nothing was sent; check the host id (homelab-cmd status), --prefix, --url, or pass --force to send anyway`
  );
}

/** "12 min ago" — coarse on purpose: it is a hint for a person. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} days ago`;
}

/**
 * One line for an offline host: since when (its last heartbeat is the best a retained message can say),
 * and what becomes of the request — it carries ts and ttl = --wait, so it is never run later than that.
 */
export function offlineLine(host: string, row: HostRow, ttlS: number, now: number): string {
  const ts = row.heartbeat ? Date.parse(row.heartbeat.ts) : NaN;
  const head = Number.isFinite(ts)
    ? `host ${host} is offline since about ${new Date(ts).toISOString()} (its last heartbeat, ${ago(now - ts)})`
    : `host ${host} is offline (its retained status says so; it left no heartbeat)`;
  return `${head}; sending anyway — the request is valid for ${ttlS} s (its ttl, = --wait): if ${host} comes back within that it runs, otherwise the agent rejects it as expired and it never runs late`;
}
