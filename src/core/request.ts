/**
 * Turning an MQTT delivery into a request, or a rejection that says what to change.
 * Pure: the caller passes the clock and the id maker.
 */
import { fieldHint } from './request-fields.js';
import { z } from 'zod';
import { CANCEL_OLDEST } from './cancel.js';
import { parseBoundedJson } from './json.js';
import { staleness } from './freshness.js';
import { ACTION_NAME_RE, REQUEST_ID_RE } from './names.js';
import { unalias } from './request-aliases.js';
import type { Rejection, RequestRef } from './result.js';

/** Bigger payloads are refused before JSON.parse ever sees them. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** A raw command line; longer ones are refused before any pattern runs (see MAX_PATTERN_PROGRAM). */
export const MAX_COMMAND_LENGTH = 1024;

export interface Request {
  id: string;
  /** True when the agent made the id (a press, or a request without one). */
  generatedId: boolean;
  /**
   * A plain payload on cmd/ACTION, or `press: true` (HA's button, whose template stamps ts/ttl): it runs
   * with the params HA shows for the action.
   */
  press: boolean;
  action: string | undefined;
  params: Record<string, unknown>;
  command: string | undefined;
  timeoutMs: number | undefined;
  ts: number | undefined;
  ttl: number | undefined;
  sig: string | undefined;
  transaction: string | undefined;
  /** A cancel request: the id it stops, or `@oldest` (docs/mqtt-api.md § Cancel). Nothing else runs. */
  cancel?: string | undefined;
}

export type ParseOutcome =
  { ok: true; request: Request } | { ok: false; ref: RequestRef; rejection: Rejection };

export interface Delivery {
  /** ACTION of `P/H/cmd/ACTION`; undefined on `P/H/cmd`. */
  topicAction: string | undefined;
  payload: Uint8Array;
  retained: boolean;
}

export const requestSchema = z.strictObject({
  id: z.union([z.string(), z.number()]).optional(),
  action: z.string().optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  command: z.string().optional(),
  timeout: z.number().positive().optional(),
  ts: z.number().int().nonnegative().optional(),
  ttl: z.number().positive().optional(),
  sig: z.string().max(512).optional(),
  transaction: z.string().max(64).optional(),
  press: z.boolean().optional(),
  cancel: z.string().max(64).optional(),
});

export function parseDelivery(delivery: Delivery, now: number, newId: () => string): ParseOutcome {
  const { topicAction, payload } = delivery;
  const fallbackRef: RequestRef = { id: newId(), action: topicAction ?? null };
  const reject = (code: Rejection['code'], error: string, ref: RequestRef = fallbackRef): ParseOutcome => ({
    ok: false,
    ref,
    rejection: { code, error },
  });

  if (topicAction !== undefined && !ACTION_NAME_RE.test(topicAction)) {
    return reject(
      'unknown_action',
      `"${topicAction}" is not a valid action name — action names match ${ACTION_NAME_RE.source}`,
      { ...fallbackRef, action: null },
    );
  }
  if (payload.byteLength > MAX_PAYLOAD_BYTES) {
    return reject(
      'invalid_request',
      `the payload is ${payload.byteLength} bytes; requests are at most ${MAX_PAYLOAD_BYTES} bytes — send params, not data`,
    );
  }
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  const trimmed = text.trimStart();

  if (!trimmed.startsWith('{')) {
    // Empty or any non-JSON text (HA's PRESS) is a press of P/H/cmd/ACTION.
    if (delivery.retained) return reject('retained_ignored', retainedMessage());
    if (topicAction === undefined) {
      return reject(
        'invalid_request',
        'a payload on the cmd topic must be a JSON request naming "action" or "command" — or publish to cmd/<action> to press it',
      );
    }
    return { ok: true, request: pressRequest(fallbackRef.id, topicAction) };
  }

  // Depth is bounded before JSON.parse: everything after it recurses (docs/security.md § What the agent withstands).
  const bounded = parseBoundedJson(text);
  if (!bounded.ok) {
    return reject(
      'invalid_request',
      `the payload starts with "{" but is ${bounded.error} — fix the JSON, or send plain text to press`,
    );
  }
  const json = bounded.value;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return reject('invalid_request', 'the payload must be one JSON object');
  }

  const unaliased = unalias(json as Record<string, unknown>);
  if (typeof unaliased === 'string') return reject('invalid_request', unaliased, refFrom(json, fallbackRef));
  const parsed = requestSchema.safeParse(unaliased);
  const ref = refFrom(unaliased, fallbackRef);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `"${first.path.join('.')}"` : 'the request';
    const what =
      first?.code === 'unrecognized_keys'
        ? `has unknown field(s) ${first.keys.map((k) => `"${k}"`).join(', ')} — known fields: id, action, params, command, timeout, ts, ttl, sig, transaction, press, cancel`
        : `${first?.message ?? 'is invalid'} — ${fieldHint(first?.path[0])}`;
    return reject('invalid_request', `${where} ${what}`, ref);
  }
  const r = parsed.data;
  if (delivery.retained) return reject('retained_ignored', retainedMessage(), ref);

  let id = ref.id;
  const generatedId = r.id === undefined;
  if (!generatedId) {
    id = String(r.id);
    if (typeof r.id === 'number' && !Number.isSafeInteger(r.id))
      return reject('invalid_request', `"id" ${r.id} is not a whole number — use a string id`, ref);
    if (!REQUEST_ID_RE.test(id))
      return reject(
        'invalid_request',
        `"id" must match ${REQUEST_ID_RE.source} (letters, digits, . _ : -; up to 64)`,
        { ...ref, id: fallbackRef.id },
      );
  }
  if (r.action !== undefined && !ACTION_NAME_RE.test(r.action)) {
    return reject(
      'unknown_action',
      `"${r.action}" is not a valid action name — action names match ${ACTION_NAME_RE.source}`,
      ref,
    );
  }
  if (r.action !== undefined && topicAction !== undefined && r.action !== topicAction) {
    return reject(
      'invalid_request',
      `"action" is "${r.action}" but the topic names "${topicAction}" — make them agree or drop "action"`,
      ref,
    );
  }
  if (r.cancel !== undefined) {
    const refused = cancelRefusal(r, id, topicAction);
    if (refused) return reject('invalid_request', refused, ref);
  }
  const action = r.action ?? topicAction;
  if (r.cancel !== undefined) {
    // Nothing to resolve: the target is looked up by the agent (agent/cancel.ts).
  } else if (r.command !== undefined) {
    if (r.params !== undefined)
      return reject(
        'invalid_request',
        'give "params" or a raw "command", not both — the command\'s pattern supplies the params',
        ref,
      );
    if (r.command.length > MAX_COMMAND_LENGTH)
      return reject('invalid_request', `"command" is longer than ${MAX_COMMAND_LENGTH} characters`, ref);
  } else if (action === undefined) {
    return reject(
      'invalid_request',
      'name an "action" (or send a raw "command", or publish to cmd/<action>)',
      ref,
    );
  }
  if (r.ttl !== undefined && r.ts === undefined)
    return reject(
      'invalid_request',
      '"ttl" needs "ts" (the sender\'s time in ms since epoch) to count from',
      ref,
    );
  if (r.press === true && (r.params !== undefined || r.command !== undefined))
    return reject(
      'invalid_request',
      '"press": true takes its params from the Home Assistant select/number entities — drop "params" (or "command"), or drop "press" to give them yourself',
      ref,
    );
  // ttl and clock skew here; a ts without ttl is checked against the action's max_age once it is resolved.
  const late = staleness({ ts: r.ts, ttl: r.ttl }, now, Infinity);
  if (late) return reject(late.code, late.error, ref);
  return {
    ok: true,
    request: {
      id,
      generatedId,
      press: r.press === true,
      action,
      params: r.params === undefined ? {} : ownCopy(unaliased.params as Record<string, unknown>),
      command: r.command,
      timeoutMs: r.timeout === undefined ? undefined : Math.round(r.timeout * 1000),
      ts: r.ts,
      ttl: r.ttl,
      sig: r.sig,
      transaction: r.transaction,
      ...(r.cancel !== undefined ? { cancel: r.cancel } : {}),
    },
  };
}

/**
 * A cancel request names only what it stops: on `P/H/cmd`, with no action, params, command, press or
 * timeout of its own, and never itself (docs/mqtt-api.md § Cancel).
 */
function cancelRefusal(
  r: z.infer<typeof requestSchema>,
  id: string,
  topicAction: string | undefined,
): string | undefined {
  const cancel = r.cancel ?? '';
  if (topicAction !== undefined)
    return `a cancel request goes to the host's cmd topic without an action (P/H/cmd), not to cmd/${topicAction}`;
  const extra = (['action', 'params', 'command', 'press', 'timeout'] as const).filter(
    (k) => r[k] !== undefined,
  );
  if (extra.length > 0)
    return `a cancel request carries only id, cancel, ts, ttl, sig and transaction — drop ${extra.map((k) => `"${k}"`).join(', ')}`;
  if (cancel !== CANCEL_OLDEST && !REQUEST_ID_RE.test(cancel))
    return `"cancel" must be a request id (${REQUEST_ID_RE.source}) or "${CANCEL_OLDEST}"`;
  if (cancel === id) return `a request cannot cancel itself — "cancel" names another request's id`;
  return undefined;
}

function pressRequest(id: string, action: string): Request {
  return {
    id,
    generatedId: true,
    press: true,
    action,
    params: {},
    command: undefined,
    timeoutMs: undefined,
    ts: undefined,
    ttl: undefined,
    sig: undefined,
    transaction: undefined,
  };
}

function retainedMessage(): string {
  return 'the request was a retained message; retained commands are never run (they would re-run at every reconnect) — publish without the retain flag, and clear the retained one with an empty retained payload';
}

/**
 * The params exactly as sent. zod's record drops a "__proto__" key, which would let an unknown param
 * pass unnoticed; kept as a plain own property, validation rejects it like any other unknown name.
 */
function ownCopy(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params))
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

/** Best-effort id, action and transaction for the rejection of a bad request, so the sender can find it. */
function refFrom(obj: unknown, fallback: RequestRef): RequestRef {
  const o = obj as Record<string, unknown>;
  const rawId = o.id ?? o.action_id;
  const id = typeof rawId === 'number' && Number.isSafeInteger(rawId) ? String(rawId) : rawId;
  const action = o.action ?? o.action_type;
  const ref: RequestRef = {
    id: typeof id === 'string' && REQUEST_ID_RE.test(id) ? id : fallback.id,
    action: typeof action === 'string' && ACTION_NAME_RE.test(action) ? action : fallback.action,
  };
  if (typeof o.transaction === 'string' && o.transaction.length <= 64) ref.transaction = o.transaction;
  return ref;
}
