/** The summary table of a fleet run: failures first (docs/fleet.md § The summary). */
import { countRows, type FleetRow } from '../core/fleet-run.js';
import { MAX_CELL, printable } from './status-rows.js';

export function formatSummary(runId: string, action: string, rows: readonly FleetRow[]): string {
  const header = ['HOST', 'STATUS', 'EXIT', 'TIME', 'DETAIL'];
  const body = rows.map((r) => [
    r.host,
    r.status,
    r.exit_code === undefined ? '-' : String(r.exit_code),
    r.duration_ms === undefined ? '-' : `${(r.duration_ms / 1000).toFixed(1)}s`,
    // The agent's error text is another host's: printable, one line, capped.
    printable(detail(r), 2 * MAX_CELL),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const table = [header, ...body].map((cols) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  const counts = Object.entries(countRows(rows))
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  return [...table, '', `run ${runId}: ${action} on ${rows.length} host(s): ${counts}`].join('\n');
}

function detail(r: FleetRow): string {
  if (r.status === 'offline') return 'not online at the start: nothing sent';
  if (r.status === 'not_started') return 'not started: an earlier host did not succeed (--serial)';
  if (r.status === 'scheduled')
    return `scheduled${r.run_at ? ` to run at ${r.run_at}` : ''} (stagger group) — collect it later with the same --run-id`;
  if (r.status === 'succeeded') return '';
  return [r.error_code, r.error].filter(Boolean).join(': ');
}
