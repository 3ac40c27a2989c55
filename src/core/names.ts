/** Name rules of the contract (docs/configuration.md § Top level, `host`; docs/mqtt-api.md § The request object): one home for each pattern. */
export const HOST_ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const ACTION_NAME_RE = /^[a-z0-9][a-z0-9_]{0,62}$/;
export const REQUEST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
// Param names become regex named groups in `pattern`, so they must be JS identifiers too.
export const PARAM_NAME_RE = /^[a-z][a-z0-9_]{0,62}$/;
// A topic prefix may have levels but never wildcards or empty levels.
export const TOPIC_PREFIX_RE = /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*$/;

/** The contract's default host id: the OS hostname, lowercased, other characters replaced by `-`. */
export function defaultHostId(hostname: string): string {
  const id = hostname
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63);
  return id === '' ? 'localhost' : id;
}

/**
 * Characters no param value, path or probe name may carry (docs/security.md § What the agent withstands):
 * C0, DEL and C1 (NUL ends a C string, a newline splits a log line, CSI and NEL drive terminals), the
 * bidi controls that reorder what an admin reads (U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069),
 * the zero-width characters that hide inside a name (U+200B–U+200D, U+2060, U+FEFF) and the line and
 * paragraph separators that split a line in editors and JavaScript (U+2028/U+2029). The one home of this
 * rule: the CLI's display of what other hosts wrote uses it too.
 */
export const CONTROL_RE =
  // eslint-disable-next-line no-control-regex -- the point is to match them
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\u2028\u2029\ufeff]/;
