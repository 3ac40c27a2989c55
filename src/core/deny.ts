/**
 * The deny-list: a second wall behind the whitelist. The final argv (after
 * params are filled in, before sudo wraps it) is checked against built-in
 * rules for the commands that wreck a machine, plus the config's own
 * `security.deny` patterns. A match is `rejected` / `denied`.
 *
 * Text alone is easy to dodge (`/etc//shadow`, `/dev/mapper/root`, a symlink):
 * the rules also see each argv in its canonical form, which exec/canonical.ts
 * builds on the file system — paths resolved, and every block device node
 * named `/dev/block/MAJOR:MINOR` whatever its own name (docs/security.md § Deny-list).
 */
import { searches } from './template.js';

export interface DenyRule {
  name: string;
  matches(argv: readonly string[]): boolean;
}

const base = (exe: string) => exe.slice(exe.lastIndexOf('/') + 1);
// By name where the node does not exist here (a canonical form never lies about one that does).
const BLOCK_DEVICE_RE =
  /^\/dev\/(sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|md\d|dm-\d|loop\d|nbd\d|zram\d|disk\/|mapper\/|block\/)/;
const ROOTISH = new Set(['/', '/*', '/.', '/..']);

export const BUILTIN_DENY: readonly DenyRule[] = [
  {
    name: 'recursive delete of /',
    matches: (a) =>
      base(a[0] ?? '') === 'rm' &&
      a.some((x) => /^-[a-zA-Z]*[rR]/.test(x) || x === '--recursive') &&
      a.some((x) => ROOTISH.has(x) || x === '--no-preserve-root'),
  },
  { name: 'making a filesystem', matches: (a) => /^mkfs(\..+)?$|^mke2fs$|^wipefs$/.test(base(a[0] ?? '')) },
  {
    name: 'writing to a block device',
    matches: (a) => {
      const exe = base(a[0] ?? '');
      if (exe === 'dd') return a.some((x) => x.startsWith('of=') && BLOCK_DEVICE_RE.test(x.slice(3)));
      return (
        ['shred', 'fdisk', 'sfdisk', 'parted', 'sgdisk', 'blkdiscard'].includes(exe) &&
        a.some((x) => BLOCK_DEVICE_RE.test(x))
      );
    },
  },
  {
    name: 'a fork bomb',
    matches: (a) => a.some((x) => /:\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:/.test(x)),
  },
  { name: 'reading the password hashes', matches: (a) => a.some((x) => /\/etc\/g?shadow\b/.test(x)) },
  {
    name: 'recursive chmod or chown of /',
    matches: (a) =>
      ['chmod', 'chown', 'chgrp'].includes(base(a[0] ?? '')) &&
      a.some((x) => /^-[a-zA-Z]*R/.test(x) || x === '--recursive') &&
      a.some((x) => ROOTISH.has(x)),
  },
];

/**
 * The first rule the argv matches: a built-in one, or a `security.deny` pattern (matched against the
 * argv joined by spaces). `canonical`: the same argv with its paths resolved (exec/canonical.ts);
 * each form is checked, so neither spelling nor a link gets a command past a rule.
 */
export function deniedBy(
  argv: readonly string[],
  extra: readonly string[] = [],
  canonical: readonly (readonly string[])[] = [],
): string | undefined {
  for (const form of [argv, ...canonical]) {
    for (const rule of BUILTIN_DENY) if (rule.matches(form)) return rule.name;
    const line = form.join(' ');
    for (const pattern of extra) {
      // Unanchored on purpose: a deny pattern may match anywhere in the command line. RE2, as the line
      // holds param values from the wire (docs/configuration.md § Patterns).
      if (searches(pattern, line)) return `security.deny pattern ${pattern}`;
    }
  }
  return undefined;
}
