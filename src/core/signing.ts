/**
 * Signed requests: HMAC-SHA256 over a canonical string that binds host,
 * action, id, params and ts (docs/security.md). Pure: the key and the clock
 * come from the caller.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface SignedFields {
  host: string;
  /** The action; for a raw-command request, the empty string. */
  action: string;
  id: string;
  ts: number;
  /** The params as sent; for a raw-command request, `{ command }`. */
  params: Record<string, unknown>;
}

/**
 * `homelab-cmd/v1`, host, action, id, ts and the params as JSON with sorted keys
 * and no spaces, joined by "\n". Every field is bound: change any and the
 * signature no longer matches.
 */
export function canonicalString(f: SignedFields): string {
  return ['homelab-cmd/v1', f.host, f.action, f.id, String(f.ts), canonicalJson(f.params)].join('\n');
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

/** Lowercase hex HMAC-SHA256. */
export function sign(key: string, f: SignedFields): string {
  return createHmac('sha256', key).update(canonicalString(f)).digest('hex');
}

export function verify(key: string, f: SignedFields, sig: string): boolean {
  const want = Buffer.from(sign(key, f), 'hex');
  const got = /^[0-9a-fA-F]{64}$/.test(sig) ? Buffer.from(sig, 'hex') : Buffer.alloc(0);
  return got.length === want.length && timingSafeEqual(got, want);
}
