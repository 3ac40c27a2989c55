/**
 * MQTT 5 reply targets (docs/security.md § Answers that cannot be faked): the agent answers a
 * request's response topic only under its own `P/H/reply/`, which only agent H may write, so a
 * reply can neither be forged by another account nor be aimed at a topic the agent owns for
 * something else (another request's `P/H/result/ID`, its status, fleet or discovery topics).
 * `mosquitto_rr -e 'P/H/reply/me'` and `homelab-cmd send` (`P/H/reply/<random>`) ask there.
 * Pure: the caller logs the reason and publishes.
 */

/** Longest response topic answered, in UTF-8 bytes: room for any prefix, host and a client's own suffix. */
export const MAX_REPLY_TOPIC_BYTES = 256;
/** Largest correlation data echoed: a requester's token (`send` uses 16 bytes), not a payload. */
export const MAX_CORRELATION_BYTES = 256;

export interface ReplyTo {
  responseTopic: string;
  correlationData: Buffer | undefined;
}

export type ReplyCheck = { ok: true; replyTo: ReplyTo | undefined } | { ok: false; reason: string };

/**
 * The reply target of a request, `undefined` when it named none, or why it is not answered.
 * `base` is the agent's own `P/H/reply/` (HostTopics.replyBase).
 */
export function checkReplyTo(responseTopic: unknown, correlationData: unknown, base: string): ReplyCheck {
  if (responseTopic === undefined || responseTopic === null) return { ok: true, replyTo: undefined };
  if (typeof responseTopic !== 'string' || responseTopic === '')
    return { ok: false, reason: 'the response topic is empty' };
  if (!responseTopic.startsWith(base))
    return { ok: false, reason: `the response topic is not under ${base} (the only topics answered)` };
  const rest = responseTopic.slice(base.length);
  if (rest.split('/').some((level) => level === ''))
    return { ok: false, reason: `the response topic has an empty level after ${base}` };
  // Wildcards are not topic names [MQTT-3.3.2-2]; "$" topics belong to the broker; NUL is forbidden [MQTT-1.5.4-2].
  if (/[+#$]/.test(rest) || rest.includes('\u0000'))
    return { ok: false, reason: 'the response topic contains a wildcard, "$" or NUL' };
  if (Buffer.byteLength(responseTopic) > MAX_REPLY_TOPIC_BYTES)
    return { ok: false, reason: `the response topic is longer than ${MAX_REPLY_TOPIC_BYTES} bytes` };
  if (correlationData !== undefined && !Buffer.isBuffer(correlationData))
    return { ok: false, reason: 'the correlation data is not binary data' };
  if (correlationData !== undefined && correlationData.length > MAX_CORRELATION_BYTES)
    return { ok: false, reason: `the correlation data is longer than ${MAX_CORRELATION_BYTES} bytes` };
  return { ok: true, replyTo: { responseTopic, correlationData } };
}
