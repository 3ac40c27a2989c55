/**
 * argv templates: `{param}` is replaced inside one element. A value never
 * splits an element or adds one — there is no shell, ever.
 */
import { RE2JS } from 're2js';

const PLACEHOLDER_RE = /\{([a-z][a-z0-9_]{0,62})\}/g;

export function placeholders(element: string): string[] {
  return [...element.matchAll(PLACEHOLDER_RE)].map((m) => m[1] as string);
}

export function expandElement(element: string, values: Readonly<Record<string, string>>): string {
  return element.replace(PLACEHOLDER_RE, (whole, name: string) =>
    Object.hasOwn(values, name) ? (values[name] ?? whole) : whole,
  );
}

/**
 * User patterns (param `pattern`, action `pattern`, `security.deny`) in RE2 syntax, run by re2js: matching
 * takes time linear in the input whatever the pattern, so no value a sender picks can stall the agent's
 * one thread (docs/configuration.md § Patterns; docs/security.md § What the agent withstands).
 */
export class PatternError extends Error {
  readonly code = 'invalid_pattern';
}

/** Compiled patterns by source: compiling costs far more than matching (about 0.5 ms against µs). */
const compiled = new Map<string, RE2JS>();
const CACHE_MAX = 512;

function compile(source: string): RE2JS {
  let re = compiled.get(source);
  if (re) return re;
  re = RE2JS.compile(source);
  // A config has a few dozen patterns; the bound only matters for callers that compile anything.
  if (compiled.size >= CACHE_MAX) compiled.clear();
  compiled.set(source, re);
  return re;
}

/**
 * The largest compiled program a pattern may have. RE2's time is linear in the input but also in the
 * program: a counted repeat of a group (`(?:[^x]*y){1,1000}`, 4,003 instructions) took 0.9 s on a
 * 4 KB command. With at most this many instructions and MAX_COMMAND_LENGTH characters, one match stays
 * within tens of milliseconds (docs/configuration.md § Patterns; test/unit/patterns.test.ts).
 */
export const MAX_PATTERN_PROGRAM = 1000;

/** The compiled program's size (re2js keeps it on its RE2 object); undefined if a re2js release moves it. */
function programSize(re: RE2JS): number | undefined {
  const n = (re as unknown as { re2Input?: { prog?: { inst?: unknown[] } } }).re2Input?.prog?.inst?.length;
  return typeof n === 'number' ? n : undefined;
}

/** Why `source` cannot be a pattern, with the fix; undefined when it can. */
export function patternProblem(source: string): string | undefined {
  try {
    // Alone first: a source that compiles only inside our wrapper (`a)|(b`) would escape the anchors.
    compile(source);
    const size = programSize(compile(wrap(source)));
    if (size !== undefined && size > MAX_PATTERN_PROGRAM)
      return `is too large to match in bounded time (${size} RE2 instructions; at most ${MAX_PATTERN_PROGRAM}) — lower its counted repeats ({m,n}), above all on groups, or split it into params (docs/configuration.md § Patterns)`;
    return undefined;
  } catch (err) {
    const why = (err as Error).message.replace(/^error parsing regexp: /, '');
    if (/\\(?:[1-9]|k<)/.test(source))
      return `uses a backreference (${why}), which RE2 does not support: matching stays linear only without them — match the repeated text explicitly, or make it a second param`;
    if (/\(\?[=!]|\(\?<[=!]/.test(source))
      return `uses lookaround ((?=…), (?!…), (?<=…) or (?<!…); ${why}), which RE2 does not support — match the text itself, or narrow the character class instead`;
    if (/^unexpected \)/.test(why))
      return `closes a group it never opened (${why}) — a pattern is matched whole, as ^(?:…)$, and a ")" outside any group would let an alternative escape the anchors; balance the parentheses, and put alternatives inside a group: (a|b)`;
    return `does not compile as an RE2 pattern (${why}) — fix the syntax; RE2 has no backreferences or lookaround, and writes \\x{e9} for \\u00e9 (docs/configuration.md § Patterns)`;
  }
}

function wrap(source: string): string {
  return `^(?:${source})$`;
}

/** A user pattern compiled to match a whole string; throws PatternError when it cannot be used. */
export function anchored(source: string): RE2JS {
  const problem = patternProblem(source);
  if (problem !== undefined) throw new PatternError(`pattern ${source} ${problem}`);
  return compile(wrap(source));
}

/** Whether `text` matches `source` whole. A pattern that cannot be used matches nothing (fail closed). */
export function matchesWhole(source: string, text: string): boolean {
  if (patternProblem(source) !== undefined) return false;
  return compile(wrap(source)).testExact(text);
}

/** The named captures when `text` matches `source` whole; undefined when not (or the pattern is unusable). */
export function capturesWhole(source: string, text: string): Record<string, string> | undefined {
  if (patternProblem(source) !== undefined) return undefined;
  const re = compile(wrap(source));
  const m = re.matcher(text);
  if (!m.matches()) return undefined;
  // Own properties of a null-prototype object: group names come from the config, values from the wire.
  const out = Object.create(null) as Record<string, string>;
  for (const name of Object.keys(re.namedGroups())) {
    const v = m.group(name);
    if (v !== null) out[name] = v;
  }
  return out;
}

/** Whether `source` matches anywhere in `text` (deny rules). An unusable pattern matches everything. */
export function searches(source: string, text: string): boolean {
  if (patternProblem(source) !== undefined) return true;
  return compile(source).test(text);
}

/** Named capture groups of a pattern (`(?<n>…)` or `(?P<n>…)`), in source order; none when it cannot compile. */
export function namedGroups(pattern: string): string[] {
  try {
    const groups = compile(pattern).namedGroups();
    return Object.keys(groups).sort((a, b) => (groups[a] ?? 0) - (groups[b] ?? 0));
  } catch {
    return [];
  }
}
