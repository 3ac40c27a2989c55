/** `homelab-cmd status --actions`: one row per host and action, from the heartbeat's `actions` extension. */
import { MAX_CELL, printable, type ActionFiguresView, type HostRow } from './status-rows.js';

/** A flat row for --json: easy to filter with jq (`.[] | select(.failed > 0)`). */
export type ActionRow = { host: string; status: string; action: string } & ActionFiguresView;

export function actionRows(hosts: HostRow[]): ActionRow[] {
  return hosts.flatMap((h) =>
    Object.entries(h.heartbeat?.actions ?? {}).map(([action, f]) => ({
      host: h.host,
      status: h.status,
      action,
      ...f,
    })),
  );
}

/** 850ms, 12.3s, 4.5m, 1.2h: short enough for a column, exact enough to compare runs. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)}m`;
  return `${(ms / 3_600_000).toFixed(1)}h`;
}

function ago(iso: string | null, now: Date): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (Number.isNaN(s)) return '';
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** Plain text, no colour: it reads the same piped, in a log or on a terminal. */
export function formatActionsTable(hosts: HostRow[], now: Date): string {
  const header = ['HOST', 'ACTION', 'COUNT', 'OK', 'FAILED', 'TIMED OUT', 'REJECTED', 'P50', 'P95', 'LAST'];
  const body: string[][] = [];
  for (const h of hosts) {
    const actions = h.heartbeat?.actions;
    const unreadable = h.errors?.find((e) => e.startsWith('heartbeat:'));
    if (!actions) {
      // An agent older than the `actions` field, or no heartbeat at all: say so rather than drop the host.
      body.push([
        h.host,
        unreadable
          ? `(${unreadable})`
          : h.heartbeat
            ? '(no per-action figures: upgrade this agent)'
            : '(no heartbeat)',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
      ]);
      continue;
    }
    const names = Object.keys(actions);
    if (names.length === 0) body.push([h.host, '(no actions configured)', '', '', '', '', '', '', '', '']);
    for (const name of names) {
      const f = actions[name];
      if (!f) continue;
      const last = f.last_status ? `${f.last_status} ${ago(f.last_at, now)}`.trim() : '-';
      body.push([
        h.host,
        name,
        String(f.count),
        String(f.succeeded),
        String(f.failed),
        String(f.timed_out),
        String(f.rejected),
        formatMs(f.p50_ms),
        formatMs(f.p95_ms),
        last,
      ]);
    }
  }
  // Host and action names, statuses and error texts come from other hosts: printable only (status-rows.ts).
  const safe = body.map((cols) => cols.map((c) => printable(c, 2 * MAX_CELL)));
  const widths = header.map((t, i) => Math.max(t.length, ...safe.map((b) => (b[i] ?? '').length)));
  return [header, ...safe]
    .map((cols) =>
      cols
        .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
