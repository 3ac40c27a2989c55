/**
 * How the commands we suggest spell this CLI, for the way it was installed. `npx homelab-cmd` only
 * where npx finds this very package locally: anywhere else npx would ask the npm registry for the
 * name, and whoever published it there would run (docs/security.md § homelab-cmd up on a shared machine).
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';

export interface Invocation {
  /** This process's bin/homelab-cmd.js (process.argv[1]). */
  bin: string;
  cwd: string;
  /** $PATH. */
  pathEnv: string | undefined;
}

export function commandForm({ bin, cwd, pathEnv }: Invocation): string {
  const self = real(bin);
  if (self === undefined) return 'homelab-cmd';
  // Globally installed: `homelab-cmd` on PATH is this package (node_modules/.bin on PATH is npm's doing, not the user's shell).
  for (const dir of (pathEnv ?? '').split(path.delimiter)) {
    if (!dir || dir.endsWith(path.join('node_modules', '.bin'))) continue;
    if (real(path.join(dir, 'homelab-cmd')) === self) return 'homelab-cmd';
  }
  // A checkout, or a project that installed it: npx resolves it here without the registry.
  const root = path.dirname(path.dirname(self));
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    if (real(path.join(dir, 'node_modules', '.bin', 'homelab-cmd')) === self) return 'npx homelab-cmd';
    if (real(dir) === real(root) && packageName(dir) === 'homelab-cmd') return 'npx homelab-cmd';
    if (path.dirname(dir) === dir) break;
  }
  return `node ${/[^\w./-]/.test(self) ? JSON.stringify(self) : self}`;
}

function real(p: string): string | undefined {
  try {
    return existsSync(p) ? realpathSync(p) : undefined;
  } catch {
    return undefined;
  }
}

function packageName(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name;
  } catch {
    return undefined;
  }
}
