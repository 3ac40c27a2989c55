/**
 * Probes as pure data: the retained state object, the argv of the probes that
 * run a program, and the reading of their output (docs/mqtt-api.md § Probes).
 * The I/O lives in src/agent/probe-checks.ts.
 */
import type { ProbeConfig, ProbeOf, ProbeType } from '../config/probes.js';
import type { ProbeState } from './formats.js';
import { formatDuration } from './duration.js';

/** The unit of each kind's `value`: a latency, a share of the disk, or none (a word or a count). */
export const PROBE_UNIT: Readonly<Record<ProbeType, ProbeState['unit']>> = {
  http: 'ms',
  tcp: 'ms',
  ping: 'ms',
  service: null,
  disk: '%',
  process: null,
  // A command probe's unit is its own (probes.<name>.unit): the reading carries it.
  command: null,
};

/** What one check found, before it is stamped with name, time and duration. */
export interface ProbeReading {
  ok: boolean;
  value: number | string | boolean | null;
  error: string | null;
  /** Overrides the kind's unit (a command probe's configured unit). */
  unit?: string | null;
  /** Kind-specific fields (http `status_code`, ping `loss_percent`, disk bytes), in a fixed order. */
  extra?: ProbeExtra;
}

export type { ProbeState } from './formats.js';

/** The kind-specific keys of a probe state. */
export type ProbeExtra = Partial<
  Pick<
    ProbeState,
    'status_code' | 'loss_percent' | 'used_bytes' | 'free_bytes' | 'total_bytes' | 'exit_code' | 'attributes'
  >
>;

// Errors end up in HA attributes and logs: a sentence, never a dump of output.
const MAX_ERROR = 200;

/** The published state; keys in a fixed order, so consumers and diffs see a stable shape. */
export function probeState(
  name: string,
  type: ProbeType,
  reading: ProbeReading,
  durationMs: number,
  checkedAt: Date,
): ProbeState {
  return {
    name,
    type,
    ok: reading.ok,
    value: reading.value,
    unit: reading.unit === undefined ? PROBE_UNIT[type] : reading.unit,
    duration_ms: Math.max(0, Math.round(durationMs)),
    checked_at: checkedAt.toISOString(),
    error: reading.ok || reading.error === null ? null : reading.error.slice(0, MAX_ERROR),
    ...reading.extra,
  };
}

/** The kind-specific fields of a check that got no reading, so every state of a kind has the same keys. */
export function emptyExtra(type: ProbeType): ProbeReading['extra'] {
  switch (type) {
    case 'http':
      return { status_code: null };
    case 'ping':
      return { loss_percent: null };
    case 'disk':
      return { used_bytes: null, free_bytes: null, total_bytes: null };
    case 'command':
      return { exit_code: null };
    default:
      return undefined;
  }
}

/** Without `status`, any 2xx is ok: redirects are not followed, so a 3xx must be listed to count. */
export function statusAccepted(status: ProbeOf<'http'>['status'], code: number): boolean {
  if (status === undefined) return code >= 200 && code <= 299;
  return (Array.isArray(status) ? status : [status]).includes(code);
}

export function describeStatus(status: ProbeOf<'http'>['status']): string {
  if (status === undefined) return '2xx';
  return (Array.isArray(status) ? status : [status]).join(' or ');
}

/**
 * `ping -c COUNT -w DEADLINE HOST`: iputils, busybox and GNU inetutils all read these the same way.
 * ping's own deadline ends it before the agent's kill, so its summary is still printed.
 * HOST cannot begin with "-" (config validation), so it is never read as an option.
 */
export function pingArgv(probe: ProbeOf<'ping'>): string[] {
  return ['ping', '-c', String(probe.count), '-w', String(pingDeadlineSeconds(probe.timeout)), probe.host];
}

export function pingDeadlineSeconds(timeoutMs: number): number {
  return Math.max(1, Math.floor(timeoutMs / 1000));
}

/** `systemctl is-active UNIT`: exit 0 when active; prints the state word. The unit never begins with "-". */
export function serviceArgv(probe: ProbeOf<'service'>): string[] {
  return ['systemctl', 'is-active', probe.unit];
}

export interface PingSummary {
  transmitted: number;
  received: number;
  /** Mean round trip in ms, when at least one reply came back. */
  avgMs: number | null;
}

/**
 * The summary lines of iputils ("3 packets transmitted, 3 received, … rtt min/avg/max/mdev = 0.04/0.05/0.06/0.01 ms"),
 * busybox and inetutils ("3 packets received", "round-trip min/avg/max = …").
 */
export function parsePing(output: string): PingSummary | undefined {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  if (!counts) return undefined;
  const rtt = /min\/avg\/max(?:\/[a-z]+)? = [\d.]+\/([\d.]+)\//.exec(output);
  const avg = rtt ? Number(rtt[1]) : NaN;
  return {
    transmitted: Number(counts[1]),
    received: Number(counts[2]),
    avgMs: Number.isFinite(avg) ? avg : null,
  };
}

export function pingReading(
  probe: ProbeOf<'ping'>,
  exitCode: number,
  stdout: string,
  stderr: string,
): ProbeReading {
  const summary = parsePing(stdout);
  if (!summary) {
    // An output we cannot read: trust the exit code alone.
    return exitCode === 0
      ? { ok: true, value: null, error: null, extra: { loss_percent: null } }
      : {
          ok: false,
          value: null,
          error: firstLine(stderr) || `ping exited with code ${exitCode}`,
          extra: { loss_percent: null },
        };
  }
  const loss = summary.transmitted > 0 ? round1((1 - summary.received / summary.transmitted) * 100) : 100;
  // At least one reply is "reachable": iputils exits 1 when any of -c replies missed the deadline.
  const ok = summary.received > 0;
  return {
    ok,
    value: ok ? summary.avgMs : null,
    error: ok ? null : `no reply from ${probe.host} (${summary.transmitted} sent)`,
    extra: { loss_percent: loss },
  };
}

/** A matching process: its `comm` (cut to 15 characters by the kernel) or the base name of its argv[0]. */
export function processMatches(wanted: string, comm: string, cmdline: string): boolean {
  if (comm.replace(/\n$/, '') === wanted) return true;
  const argv0 = cmdline.split('\0', 1)[0] ?? '';
  return argv0 !== '' && argv0.slice(argv0.lastIndexOf('/') + 1) === wanted;
}

export interface FsStats {
  blocks: number;
  bfree: number;
  bavail: number;
  bsize: number;
}

/** Used share as `df` computes it: used / (used + available to users), so the root reserve counts as full. */
export function diskUsage(s: FsStats): { percent: number; used: number; total: number; free: number } {
  const used = (s.blocks - s.bfree) * s.bsize;
  const free = s.bavail * s.bsize;
  const percent = used + free > 0 ? round1((used / (used + free)) * 100) : 0;
  return { percent, used, total: s.blocks * s.bsize, free };
}

export function diskReading(probe: ProbeOf<'disk'>, s: FsStats): ProbeReading {
  const u = diskUsage(s);
  const over = probe.warn_percent !== undefined && u.percent >= probe.warn_percent;
  return {
    ok: !over,
    value: u.percent,
    error: over
      ? `${u.percent} % used, at or above warn_percent ${probe.warn_percent} — free some space`
      : null,
    extra: { used_bytes: u.used, free_bytes: u.free, total_bytes: u.total },
  };
}

/** A sentence for a failed connection, naming the target but never a URL's credentials. */
export function networkError(code: string | undefined, message: string, target: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused by ${target} — nothing listens there`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${target.replace(/:\d+$/, '')} does not resolve — check the host name`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${target} is unreachable — check the network`;
    case 'ECONNRESET':
      return `${target} reset the connection`;
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `the TLS certificate of ${target} was refused (${code}) — fix the certificate, or set insecure: true for a self-signed one`;
    default:
      return `${target}: ${message}`;
  }
}

export function timeoutError(probe: ProbeConfig): string {
  return `no answer within ${formatDuration(probe.timeout)} — raise the probe's timeout if the target is just slow`;
}

export function firstLine(s: string): string {
  return (s.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, MAX_ERROR);
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
