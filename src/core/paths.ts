/**
 * `path` params, the text half: what a value may look like before the file
 * system is asked (exec/confine.ts resolves symlinks and checks again). Pure:
 * node:path does no I/O.
 */
import path from 'node:path';
import { CONTROL_RE } from './names.js';

/** Linux PATH_MAX: no longer path can name a file. */
export const PATH_MAX = 4096;

/**
 * The absolute, normalised path a value names, or why it cannot be used. A relative value is taken
 * inside the first root. The result must lie strictly inside one of `roots` (a root itself is refused:
 * "remove an old backup" must never be able to name the whole backup directory).
 */
export function lexicalPath(value: string, roots: readonly string[]): { value: string } | { error: string } {
  const allowed = `allowed: paths inside ${roots.join(', ')}`;
  if (value === '') return { error: `is empty — ${allowed}` };
  if (value.length > PATH_MAX)
    return { error: `is ${value.length} characters; a path has at most ${PATH_MAX} — ${allowed}` };
  if (CONTROL_RE.test(value))
    return { error: `contains a control character (NUL, newline, …), never accepted in a path — ${allowed}` };
  if (value.startsWith('-'))
    return { error: `may not begin with "-" (it would read as an option) — ${allowed}` };
  if (value.split('/').includes('..'))
    return { error: `may not contain ".." — name the file directly; ${allowed}` };
  const first = roots[0] ?? '/';
  const resolved = path.posix.resolve(first, value);
  if (!roots.some((root) => isInside(path.posix.resolve(root), resolved)))
    return { error: `"${short(value)}" is outside the allowed roots — ${allowed}` };
  return { value: resolved };
}

/** True when `p` lies strictly below `root` (both absolute and normalised): `/srv/logs-evil` is not inside `/srv/logs`. */
export function isInside(root: string, p: string): boolean {
  const rel = path.posix.relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith('../') && !path.posix.isAbsolute(rel);
}

function short(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}
