/**
 * JSON from the wire, bounded before it is parsed (docs/security.md § What the agent withstands):
 * V8's JSON.parse is iterative, but everything after it (zod, comparisons, JSON.stringify) recurses, so a
 * payload nested thousands deep must never get that far. A linear scan finds the depth first.
 */

/** Deeper than any request, record or claim the project defines; far from any stack limit. */
export const MAX_JSON_DEPTH = 32;

/** The nesting depth of JSON text ({ and [ outside strings), stopping as soon as it passes `limit`. */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return max;
}

export type BoundedJson = { ok: true; value: unknown } | { ok: false; error: string };

/** JSON.parse, after the depth scan; never throws. */
export function parseBoundedJson(text: string, maxDepth = MAX_JSON_DEPTH): BoundedJson {
  if (jsonDepth(text, maxDepth) > maxDepth)
    return {
      ok: false,
      error: `nested more than ${maxDepth} levels deep (no request needs that)`,
    };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, error: `not valid JSON (${(err as Error).message})` };
  }
}

/**
 * Deep equality of two parsed JSON values, bounded in depth (a value deeper than `maxDepth` counts as
 * different), so a comparison can never recurse without end whatever reached it.
 */
export function sameJson(a: unknown, b: unknown, maxDepth = MAX_JSON_DEPTH): boolean {
  if (a === b) return true;
  if (maxDepth <= 0 || typeof a !== 'object' || typeof b !== 'object' || a === null || b === null)
    return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(rb, k) && sameJson(ra[k], rb[k], maxDepth - 1));
}
