/**
 * Reboots, the pure part (docs/configuration.md § Reboots): what a boot id file holds, whether the
 * host rebooted, how long it was away, and the sentences a reboot's result says.
 */
import { formatDuration } from './duration.js';
import type { RebootInfo } from './formats.js';

/** A boot id as Linux writes it (a UUID); anything printable and short is taken, for other systems and tests. */
const BOOT_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

/** The boot id in a boot id file's text, or undefined when it holds none. */
export function parseBootId(text: string): string | undefined {
  const id = text.trim();
  return BOOT_ID_RE.test(id) ? id : undefined;
}

/** Exit codes of a command killed by SIGHUP, SIGINT, SIGKILL or SIGTERM: what a shutdown does to it. */
const SHUTDOWN_EXITS = new Set([128 + 1, 128 + 2, 128 + 9, 128 + 15]);

/**
 * Whether a reboot command's end is one a reboot makes: it exited 0 (systemctl reboot returns at once),
 * the shutdown killed it, or the agent stopped while it ran. Anything else means the reboot did not start.
 */
export function goingDown(outcome: { status: string; exit_code: number }): boolean {
  if (outcome.status === 'succeeded' || outcome.status === 'interrupted') return true;
  return outcome.status === 'failed' && SHUTDOWN_EXITS.has(outcome.exit_code);
}

export type BootVerdict =
  { rebooted: true; info: RebootInfo } | { rebooted: false; info: RebootInfo; error: string };

/** After the agent started again: did the host reboot? `backAt` is when the agent started. */
export function bootVerdict(
  before: RebootInfo,
  now: string | undefined,
  backAt: Date,
  file: string,
): BootVerdict {
  const downtime = Math.max(0, backAt.getTime() - Date.parse(before.down_at));
  // The schema's key order (core/formats.ts): a republished result stays byte-identical.
  const info: RebootInfo = {
    boot_id_before: before.boot_id_before,
    ...(now !== undefined ? { boot_id_after: now } : {}),
    down_at: before.down_at,
    back_at: backAt.toISOString(),
    downtime_ms: downtime,
  };
  if (now === undefined)
    return {
      rebooted: false,
      info,
      error: `the agent started again but could not read a boot id from ${file}, so whether the host rebooted is unknown — check the host (uptime), and reboot.boot_id_file`,
    };
  if (now === before.boot_id_before)
    return {
      rebooted: false,
      info,
      error: `the agent started again ${seconds(downtime)} after the reboot command, but the boot id is still ${now}: the host did not reboot (only the agent restarted) — check why the reboot did not happen (journalctl -b), then send a new request`,
    };
  return { rebooted: true, info };
}

/** The command ran, but the host was still up (same boot) when reboot.down_within ran out. */
export function stillUpError(downWithinMs: number): string {
  return `the reboot command ended but the host was still up with the same boot id ${formatDuration(downWithinMs)} later (reboot.down_within): it did not reboot — check what blocked it (systemd inhibitors, journalctl), then send a new request`;
}

/** The boot id could not be read before the reboot: it was not started, since its outcome could not be told. */
export function noBootIdError(file: string, why: string): string {
  return `not rebooted: the boot id file ${file} cannot be read (${why}), so the agent could not tell afterwards whether the host rebooted — the reboot command was not run; fix reboot.boot_id_file`;
}

/** The host rebooted, but its checks did not pass within reboot.healthy_within. */
export function checksFailedError(downtimeMs: number, why: string, withinMs: number, tries: number): string {
  return `the host rebooted (away ${seconds(downtimeMs)}) but ${why}, still after reboot.healthy_within (${formatDuration(withinMs)}, ${tries} ${tries === 1 ? 'try' : 'tries'}) — fix the host`;
}

/** "74 s"; under 10 s with a tenth ("0.3 s"), so a quick restart does not read "0 s". */
export function seconds(ms: number): string {
  return ms < 10_000 ? `${(Math.round(ms / 100) / 10).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
