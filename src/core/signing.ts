/**
 * Signed requests: HMAC-SHA256 over the canonical form `homelab-cmd/v2`, which binds everything that
 * changes what runs or where its answer goes (docs/security.md § Signed requests). Pure: the key and
 * the clock come from the caller.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_VERSION = 'homelab-cmd/v2';

/** What a v2 signature binds. An absent optional field is signed as `null`, never as "" or 0. */
export interface SignedFields {
  host: string;
  /** The action that runs: for a raw command, the action its pattern resolved to. */
  action: string;
  id: string;
  ts: number;
  /** The params object of a named-action request (`{}` when it has none); ignored for a raw command. */
  params?: Record<string, unknown> | undefined;
  /** The raw command text, for a raw-command request. */
  command?: string | undefined;
  /** Seconds, as in the request. */
  timeout?: number | undefined;
  ttl?: number | undefined;
  transaction?: string | undefined;
  press?: boolean | undefined;
  /** The id a cancel request stops. */
  cancel?: string | undefined;
  /** The MQTT 5 Response Topic the answer goes to, and its Correlation Data. */
  responseTopic?: string | undefined;
  correlationData?: Uint8Array | undefined;
}

/**
 * `homelab-cmd/v2`, a newline, then one JSON object with every field below, keys sorted, no spaces;
 * absent fields are `null`. JSON escaping keeps every value on its line and apart from the next: no
 * field can spill into another, and a missing field never reads like an empty one.
 */
export function canonicalString(f: SignedFields): string {
  const raw = f.command !== undefined;
  const fields = {
    action: f.action,
    cancel: f.cancel ?? null,
    command: raw ? f.command : null,
    correlation_data: f.correlationData === undefined ? null : Buffer.from(f.correlationData).toString('hex'),
    host: f.host,
    id: f.id,
    params: raw ? null : (f.params ?? {}),
    press: f.press ?? false,
    response_topic: f.responseTopic ?? null,
    timeout: f.timeout ?? null,
    transaction: f.transaction ?? null,
    ts: f.ts,
    ttl: f.ttl ?? null,
  };
  return `${SIGNATURE_VERSION}\n${canonicalJson(fields)}`;
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as Record<string, unknown>)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Lowercase hex HMAC-SHA256 of the v2 canonical string. */
export function sign(key: string, f: SignedFields): string {
  return hmac(key, canonicalString(f));
}

function hmac(key: string, text: string): string {
  return createHmac('sha256', key).update(text).digest('hex');
}

function same(sig: string, want: string): boolean {
  const got = /^[0-9a-fA-F]{64}$/.test(sig) ? Buffer.from(sig, 'hex') : Buffer.alloc(0);
  const w = Buffer.from(want, 'hex');
  return got.length === w.length && timingSafeEqual(got, w);
}

/**
 * `ok`; `v1` when the signature is a valid one of the retired v1 form (it bound too little to be
 * accepted, but the sender deserves to hear why); `bad` otherwise.
 */
export function verify(key: string, f: SignedFields, sig: string): 'ok' | 'v1' | 'bad' {
  if (same(sig, sign(key, f))) return 'ok';
  // v1: host, action ("" for a raw command), id, ts and the params ({command} for a raw command).
  const raw = f.command !== undefined;
  const v1 = [
    'homelab-cmd/v1',
    f.host,
    raw ? '' : f.action,
    f.id,
    String(f.ts),
    canonicalJson(raw ? { command: f.command } : (f.params ?? {})),
  ].join('\n');
  return same(sig, hmac(key, v1)) ? 'v1' : 'bad';
}
