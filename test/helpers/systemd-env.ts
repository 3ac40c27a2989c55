/** systemd's Environment= syntax, for the tests that read packaging/homelab-cmd.service. */

/**
 * The assignments of one Environment= line as systemd splits it (systemd.exec(5)): words separated by
 * spaces, a word in double or single quotes kept whole (`"NODE_OPTIONS=--a --b"`), backslash escapes
 * inside double quotes.
 */
export function assignments(value: string): string[] {
  const words: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+))/gy;
  for (let m = re.exec(value); m && m[0].trim() !== ''; m = re.exec(value))
    words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!));
  return words;
}

/** The environment that Environment= lines set, later assignments winning (systemd.exec(5)). */
export function unitEnvironment(values: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    values.flatMap(assignments).map((word) => {
      const at = word.indexOf('=');
      return [word.slice(0, at), word.slice(at + 1)];
    }),
  );
}
