/**
 * OS package updates as pure data (docs/updates.md): reading `apt-get -s`
 * output, the labels Home Assistant's update entity compares, the retained
 * state JSON, and apt's install progress. The I/O lives in src/agent/updates.ts.
 */
import { createHash } from 'node:crypto';

export interface PendingPackage {
  name: string;
  /** The installed version; null for a package the upgrade newly installs. */
  from: string | null;
  to: string;
  /** An origin of the new version is a security suite (`…-security`, `Debian-Security`). */
  security: boolean;
}

export interface AptSimulation {
  /** Upgrades that count: not held, not deferred by phasing. Sorted: security first, then by name. */
  pending: PendingPackage[];
  /** Names apt deferred due to phasing: not counted (docs/updates.md § What counts). */
  phased: string[];
  /** Held names found in an Inst line and left out (apt-get -s normally leaves them out already). */
  held: string[];
}

/** `apt-get -s -o Debug::NoLocking=1 <mode>`: no root, no lock, nothing changed — the same list the upgrade would act on. */
export function aptSimulateArgv(mode: 'upgrade' | 'dist-upgrade'): string[] {
  return ['apt-get', '-s', '-o', 'Debug::NoLocking=1', mode];
}

export const APT_SHOWHOLD_ARGV: readonly string[] = ['apt-mark', 'showhold'];

// `Inst NAME [OLD] (NEW ORIGIN[, ORIGIN…] [ARCH])` and the same without `[OLD]` for a new package;
// apt may append ` []` for packages whose dependencies it breaks on the way.
const INST_RE = /^Inst (\S+)(?: \[([^\]]*)\])? \((\S+) ([^[]*?)\s*\[[^\]]*\]\)/;
const PHASING_RE = /deferred due to phasing:?$/i;

/** `libssl3:amd64` and `libssl3` name the same package for held/phased matching. */
function bare(name: string): string {
  const i = name.indexOf(':');
  return i === -1 ? name : name.slice(0, i);
}

/** Reads `apt-get -s` output (any locale is fine: Inst lines are never translated; the phasing header is, so run it with LC_ALL=C). */
export function parseAptSimulation(output: string, holds: readonly string[] = []): AptSimulation {
  const phased = new Set<string>();
  const heldSet = new Set(holds.map(bare));
  const lines = output.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!PHASING_RE.test(lines[i]!.trim())) continue;
    // The names follow on indented lines, several per line, until a line that is not indented.
    for (i++; i < lines.length && /^\s+\S/.test(lines[i]!); i++)
      for (const n of lines[i]!.trim().split(/\s+/)) phased.add(bare(n));
    i--;
  }
  const pending: PendingPackage[] = [];
  const held: string[] = [];
  const seen = new Set<string>();
  for (const line of lines) {
    const m = INST_RE.exec(line);
    if (!m) continue;
    const [, name, from, to, origins] = m as unknown as [string, string, string | undefined, string, string];
    if (seen.has(name)) continue;
    seen.add(name);
    if (phased.has(bare(name))) continue;
    if (heldSet.has(bare(name))) {
      held.push(name);
      continue;
    }
    const security = origins.split(/,\s*/).some((o) => /-security\b|Debian-Security/i.test(o));
    pending.push({ name, from: from ?? null, to, security });
  }
  pending.sort((a, b) => Number(b.security) - Number(a.security) || a.name.localeCompare(b.name, 'en'));
  return { pending, phased: [...phased].sort(), held };
}

/** `apt-mark showhold`: one name a line. */
export function parseHolds(output: string): string[] {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[a-z0-9][a-z0-9+.:-]*$/i.test(l));
}

const hash8 = (items: string[]): string =>
  createHash('sha256').update(items.sort().join('\n')).digest('hex').slice(0, 8);

export const UP_TO_DATE = 'up to date';

/**
 * What HA compares (homeassistant/components/update/__init__.py, UpdateEntity.state): equal labels
 * mean "no update"; the skipped label (HA stores `skipped_version = latest_version` at Skip) means no
 * update while latest_version stays that label. Otherwise HA tries `AwesomeVersion(latest) >
 * installed`; these labels contain spaces, so neither matches any AwesomeVersion strategy, the
 * comparison raises AwesomeVersionCompareException and HA shows "update available" — which is what
 * differing labels mean here. So:
 * - nothing pending: both are "up to date";
 * - pending: installed is `installed · <hash of name=old>`, latest is `N package(s) · <hash of name=new>`,
 *   so Skip hides exactly this set, and any new or newer package makes a new label that shows again.
 */
export function updateLabels(pending: readonly PendingPackage[]): { installed: string; latest: string } {
  if (pending.length === 0) return { installed: UP_TO_DATE, latest: UP_TO_DATE };
  return {
    installed: `installed · ${hash8(pending.map((p) => `${p.name}=${p.from ?? ''}`))}`,
    latest: `${countLabel(pending.length)} · ${hash8(pending.map((p) => `${p.name}=${p.to}`))}`,
  };
}

const countLabel = (n: number): string => `${n} package${n === 1 ? '' : 's'}`;

// HA cuts release_summary at 255 characters (UpdateEntity.state_attributes); we end on a whole name.
export const MAX_SUMMARY = 255;

/** "3 packages (1 security): openssl, curl, tzdata" — security first; "… and N more" when it would not fit. */
export function releaseSummary(pending: readonly PendingPackage[]): string {
  if (pending.length === 0) return 'No pending package updates.';
  const sec = pending.filter((p) => p.security).length;
  const head = `${countLabel(pending.length)}${sec > 0 ? ` (${sec} security)` : ''}: `;
  const names = pending.map((p) => p.name);
  for (let n = names.length; n >= 0; n--) {
    const rest = names.length - n;
    const text =
      head + names.slice(0, n).join(', ') + (rest > 0 ? `${n > 0 ? ' ' : ''}and ${rest} more` : '');
    if (text.length <= MAX_SUMMARY) return text;
  }
  return head.slice(0, MAX_SUMMARY);
}

export interface UpdateStateInput {
  manager: 'apt';
  pending: readonly PendingPackage[];
  phased: readonly string[];
  held: readonly string[];
  checkedAt: Date;
  /** Why the last check failed; the labels then stay those of the last good check. */
  error: string | null;
  inProgress: boolean;
  percentage: number | null;
}

/** Names listed in the state, at most this many: the retained message stays small on a host that is years behind. */
const MAX_LISTED = 200;

/**
 * The retained `P/H/updates` state: HA's keys (docs/home-assistant.md § OS updates) — the discovery
 * value_template passes only those to HA, whose JSON schema refuses unknown keys — then ours.
 */
export function updateState(input: UpdateStateInput): Record<string, unknown> {
  const labels = updateLabels(input.pending);
  return {
    installed_version: labels.installed,
    latest_version: labels.latest,
    title: `OS packages (${input.manager})`,
    release_summary: releaseSummary(input.pending),
    in_progress: input.inProgress,
    update_percentage: input.inProgress ? input.percentage : null,
    pending: input.pending.length,
    security: input.pending.filter((p) => p.security).length,
    packages: input.pending.slice(0, MAX_LISTED).map((p) => ({
      name: p.name,
      from: p.from,
      to: p.to,
      security: p.security,
    })),
    phased: input.phased.slice(0, MAX_LISTED),
    held: input.held.slice(0, MAX_LISTED),
    checked_at: input.checkedAt.toISOString(),
    error: input.error,
  };
}

/** The retained `P/H/reboot_required` state. */
export function rebootState(
  required: boolean,
  packages: readonly string[],
  checkedAt: Date,
): Record<string, unknown> {
  return { required, packages: packages.slice(0, MAX_LISTED), checked_at: checkedAt.toISOString() };
}

/** `/var/run/reboot-required.pkgs`: one package a line, repeated when several upgrades asked. */
export function parseRebootPackages(text: string): string[] {
  const out = new Set<string>();
  for (const l of text.split('\n')) {
    const n = l.trim();
    if (/^[a-z0-9][a-z0-9+.:-]{0,127}$/i.test(n)) out.add(n);
  }
  return [...out].sort();
}

/**
 * apt's machine-readable progress (`-o APT::Status-Fd=1`): `pmstatus:PKG:PERCENT:MESSAGE` while dpkg
 * works, `dlstatus:PKG:PERCENT:MESSAGE` while downloading. Downloading is the first half of the bar and
 * dpkg the second, so the percentage never runs backwards when dpkg starts. Undefined for any other line.
 */
export function aptProgress(line: string): number | undefined {
  const m = /^(pmstatus|dlstatus):[^:]*:(\d+(?:\.\d+)?):/.exec(line.trim());
  if (!m) return undefined;
  const pct = Math.min(100, Math.max(0, Number(m[2])));
  const whole = m[1] === 'dlstatus' ? pct / 2 : 50 + pct / 2;
  return Math.round(whole);
}

/** The last progress line in a chunk of live output, if any. */
export function lastAptProgress(text: string): number | undefined {
  let last: number | undefined;
  for (const l of text.split('\n')) {
    const p = aptProgress(l);
    if (p !== undefined) last = p;
  }
  return last;
}
