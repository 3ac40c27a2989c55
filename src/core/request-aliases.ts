/**
 * The HomelabCmd hub's field names for a request, mapped onto ours (docs/mqtt-api.md § HomelabCmd
 * aliases). Its own module so that compatibility with another sender's names stays apart from what a
 * request is; request.ts applies it before validating. Pure.
 */
import { sameJson } from './json.js';

// The HomelabCmd hub's PendingCommand names (docs/mqtt-api.md § HomelabCmd aliases).
const ALIASES = {
  action_id: 'id',
  action_type: 'action',
  parameters: 'params',
  timeout_seconds: 'timeout',
} as const;

/** Map HomelabCmd names onto ours; a field given under both names must agree. */
export function unalias(obj: Record<string, unknown>): Record<string, unknown> | string {
  // Own keys only: a field named "constructor" or "__proto__" must stay that name, not reach Object.prototype.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of Object.entries(obj)) {
    const target = Object.hasOwn(ALIASES, key) ? ALIASES[key as keyof typeof ALIASES] : key;
    // Compared with a bounded deep equality: JSON.stringify of deep values once overflowed the stack.
    if (Object.hasOwn(out, target) && !sameJson(out[target], value)) {
      return `"${key}" and "${target}" are the same field with different values — send one of them`;
    }
    out[target] = value;
  }
  return out;
}
