/**
 * Durations in config and requests: a number of seconds, or a string with a
 * unit (`500ms`, `30s`, `30m`, `2h`). Everything inside works in milliseconds.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;

export function parseDuration(input: number | string): number | undefined {
  if (typeof input === 'number') {
    return Number.isFinite(input) && input >= 0 ? Math.round(input * 1000) : undefined;
  }
  const trimmed = input.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const m = DURATION_RE.exec(trimmed);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
}

/** Shortest exact rendering, for docs, sudoers lines and messages. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Seconds as coreutils `timeout` takes them (it accepts fractions). */
export function toSecondsArg(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}
