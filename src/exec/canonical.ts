/**
 * The canonical form of an argv, for the deny-list (core/deny.ts stays pure:
 * the file system is asked here). Every element that names a path — alone, or
 * after an option prefix such as `of=` or `--file=` — is resolved: `.`, `..`
 * and `//` lexically, then symlinks with realpath over the longest part that
 * exists; a block device node becomes `/dev/block/MAJOR:MINOR` whatever it is
 * called (`/dev/mapper/root`, `/dev/disk/by-uuid/…`, a node made with mknod in
 * /tmp). docs/security.md § Deny-list.
 */
import { realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// An option or key before the path: `of=`, `--file=`, `-f`. Anything else containing "/" is a path itself.
const PREFIX_RE = /^(--?[A-Za-z0-9][\w-]*=?|[A-Za-z_][\w-]*=)(?=[./])/;

// What a command's private directory (work-dirs.ts) stands for; os.tmpdir() reads the environment at
// every call, twice per request on this path.
const PRIVATE_CWD = path.join(os.tmpdir(), 'homelab-cmd-cwd');

/**
 * The argv's canonical forms: one per working directory a relative path could be meant from — the
 * command's private directory under the temp dir, and `/` (docs/security.md § Commands run as another user).
 * Empty when no element names a path (the text form is then all there is).
 */
export function canonicalForms(argv: readonly string[]): string[][] {
  if (!argv.some(isPathLike)) return [];
  const cwds = [PRIVATE_CWD, '/'];
  const forms = argv.some((a) => isPathLike(a) && !pathPart(a).startsWith('/')) ? cwds : ['/'];
  return forms.map((cwd) => argv.map((a) => (isPathLike(a) ? canonicalElement(a, cwd) : a)));
}

function isPathLike(element: string): boolean {
  return element.includes('/') || element === '.' || element === '..';
}

function pathPart(element: string): string {
  return element.slice(PREFIX_RE.exec(element)?.[0].length ?? 0);
}

function canonicalElement(element: string, cwd: string): string {
  const prefix = PREFIX_RE.exec(element)?.[0] ?? '';
  return prefix + canonicalPath(element.slice(prefix.length), cwd);
}

/** `p` resolved: lexically, then symlinks over its longest existing ancestor; a block device by number. */
export function canonicalPath(p: string, cwd = '/'): string {
  const lexical = path.posix.resolve(cwd, p);
  let existing = lexical;
  const rest: string[] = [];
  let real: string | undefined;
  for (;;) {
    try {
      real = realpathSync.native(existing);
      break;
    } catch {
      if (existing === '/') break;
      rest.unshift(path.posix.basename(existing));
      existing = path.posix.dirname(existing);
    }
  }
  const resolved = real === undefined ? lexical : path.posix.join(real, ...rest);
  return rest.length === 0 ? (blockDeviceName(resolved) ?? resolved) : resolved;
}

/** `/dev/block/MAJOR:MINOR` for a block device node (the kernel's own alias directory), else undefined. */
export function blockDeviceName(p: string): string | undefined {
  try {
    const st = statSync(p, { bigint: true });
    if (!st.isBlockDevice()) return undefined;
    // glibc's major()/minor() split of dev_t.
    const dev = st.rdev;
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    return `/dev/block/${major}:${minor}`;
  } catch {
    return undefined;
  }
}
