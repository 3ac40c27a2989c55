/**
 * `path` params, the file-system half: the value (already checked as text by
 * core/paths.ts) is resolved with realpath, symlinks included, and must still
 * lie inside one of its roots, themselves resolved. The RESOLVED path is what
 * goes into argv, so a symlink inside a root cannot lead the command out.
 * A regular file with more than one hard link is refused: its other names
 * may lie outside the roots, and nothing can say where they are.
 * What remains (docs/security.md): a directory swapped for a symlink between
 * this check and the command's own open().
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ActionConfig, ParamSpec } from '../config/schema.js';
import { isInside } from '../core/paths.js';
import { expandCommands, type Job } from '../core/resolve.js';
import type { Rejection } from '../core/result.js';

type PathSpec = Extract<ParamSpec, { type: 'path' }>;

/** The job with its path params resolved into its commands, or an `invalid_params` rejection. */
export function confinePaths(
  job: Job,
  action: Pick<ActionConfig, 'argv' | 'steps' | 'rollback' | 'params'> | undefined,
): { ok: true; job: Job } | { ok: false; rejection: Rejection } {
  const specs = Object.entries(action?.params ?? {}).filter(
    (e): e is [string, PathSpec] => e[1].type === 'path',
  );
  if (!action || specs.length === 0) return { ok: true, job };
  const values = { ...job.params };
  for (const [name, spec] of specs) {
    const given = job.params[name];
    if (given === undefined) continue;
    const real = confine(given, spec);
    if ('error' in real)
      return { ok: false, rejection: { code: 'invalid_params', error: `param "${name}" ${real.error}` } };
    values[name] = real.value;
  }
  const expanded = expandCommands(action, values);
  if ('code' in expanded) return { ok: false, rejection: expanded };
  // params keep the values as given: they are re-resolved whenever the job is checked again.
  return { ok: true, job: { ...job, ...expanded } };
}

function confine(value: string, spec: PathSpec): { value: string } | { error: string } {
  const allowed = `allowed: paths inside ${spec.roots.join(', ')}`;
  const roots = spec.roots.flatMap((r) => {
    try {
      return [realpathSync.native(r)];
    } catch {
      return []; // a root missing on this host confines nothing, and allows nothing
    }
  });
  if (roots.length === 0)
    return {
      error: `cannot be checked: none of its roots (${spec.roots.join(', ')}) exists on this host — create one, or fix roots in the config`,
    };
  const real = realPath(value, spec.must_exist);
  if ('error' in real) return { error: `${real.error} — ${allowed}` };
  if (!roots.some((root) => isInside(root, real.value))) {
    return {
      error: `"${short(value)}" resolves to ${short(real.value)}, outside the allowed roots (symlinks are followed) — ${allowed}`,
    };
  }
  const links = hardLinks(real.value);
  if (links > 1)
    return {
      error: `"${short(value)}" is a file with ${links} hard links: another of its names may lie outside the allowed roots, and a hard link cannot be traced, so it is refused — give the file a single name (copy it and remove the other names), or name the copy`,
    };
  return real;
}

function realPath(value: string, mustExist: boolean): { value: string } | { error: string } {
  try {
    return { value: realpathSync.native(value) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT')
      return { error: `"${short(value)}" cannot be resolved (${code ?? (err as Error).message})` };
    if (mustExist) return { error: `"${short(value)}" does not exist` };
  }
  // Not there yet (must_exist: false). A dangling symlink is "not there" to realpath, but a command
  // writing to it would create its target wherever it points: refuse it.
  try {
    lstatSync(value);
    return { error: `"${short(value)}" is a symlink to a missing target` };
  } catch {
    // truly absent: resolve its directory instead
  }
  try {
    return { value: path.join(realpathSync.native(path.dirname(value)), path.basename(value)) };
  } catch {
    return { error: `the directory of "${short(value)}" does not exist` };
  }
}

/** The link count of a regular file (1 when it is anything else, or absent: must_exist decided that). */
function hardLinks(p: string): number {
  try {
    const st = statSync(p);
    return st.isFile() ? st.nlink : 1;
  } catch {
    return 1;
  }
}

function short(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
