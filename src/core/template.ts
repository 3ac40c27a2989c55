/**
 * argv templates: `{param}` is replaced inside one element. A value never
 * splits an element or adds one — there is no shell, ever.
 */
const PLACEHOLDER_RE = /\{([a-z][a-z0-9_]{0,62})\}/g;

export function placeholders(element: string): string[] {
  return [...element.matchAll(PLACEHOLDER_RE)].map((m) => m[1] as string);
}

export function expandElement(element: string, values: Readonly<Record<string, string>>): string {
  return element.replace(PLACEHOLDER_RE, (whole, name: string) => values[name] ?? whole);
}

/** Compile a user pattern anchored at both ends, whatever the user wrote. */
export function anchored(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'u');
}

/** Named capture groups of a pattern, in source order. */
export function namedGroups(pattern: string): string[] {
  return [...pattern.matchAll(/\(\?<([A-Za-z_$][A-Za-z0-9_$]*)>/g)].map((m) => m[1] as string);
}
