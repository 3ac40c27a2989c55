/**
 * What each request field must be, in words: the end of an `invalid_request` error, so a sender who
 * typed `"ts": "2026-12-07T12:00:00Z"` learns the unit and form instead of only "expected number"
 * (docs/mqtt-api.md § The request object).
 */
const FIELD_HINTS: Record<string, string> = {
  id: 'id is a string or integer matching ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$',
  action: "action is the action's name as a string",
  params: 'params is an object of param names to values',
  command: 'command is a command line as one string of at most 1024 characters',
  timeout: 'timeout is seconds as a number > 0',
  ts: "ts is the sender's time in milliseconds since the epoch, an integer (JavaScript's Date.now(), or date +%s%3N)",
  ttl: 'ttl is seconds after ts as a number > 0',
  press: 'press is true or false',
  sig: 'sig is the lowercase hex HMAC of the request (docs/security.md)',
  transaction: 'transaction is a string of at most 64 characters',
  cancel: 'cancel is the id of a request of this host, or @oldest',
};

/** The hint for an invalid field (the first segment of zod's issue path). */
export function fieldHint(field: PropertyKey | undefined): string {
  // Own keys only: a path segment named "constructor" must not find Object's.
  const hint =
    typeof field === 'string' && Object.hasOwn(FIELD_HINTS, field) ? FIELD_HINTS[field] : undefined;
  return hint
    ? `${hint} (docs/mqtt-api.md § The request object)`
    : 'see docs/mqtt-api.md § The request object';
}
