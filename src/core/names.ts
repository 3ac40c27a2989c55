/** Name rules of the contract (CONTRACT.md § Names): one home for each pattern. */
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
