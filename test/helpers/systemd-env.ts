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
