/**
 * The heartbeat object (docs/mqtt-api.md § Status and heartbeat), read from `os` and
 * `statfs` — no child process, so a heartbeat costs nothing and cannot hang.
 */
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import type { ActionFigures, Stats } from '../core/action-stats.js';
import type { Heartbeat } from '../core/formats.js';

export type { Heartbeat } from '../core/formats.js';

export interface HeartbeatInput {
  host: string;
  version: string;
  running: number;
  queued: number;
  pendingResults: number;
  stats: Stats;
  actions?: Record<string, ActionFigures>;
  /** The filesystem whose use is reported: the one holding state_dir. */
  diskPath: string;
  insecure?: boolean;
  degraded?: string | undefined;
}

export async function readHeartbeat(input: HeartbeatInput, now = new Date()): Promise<Heartbeat> {
  const [l1, l5, l15] = os.loadavg();
  const total = os.totalmem();
  let disk = { used: 0, total: 0 };
  try {
    const s = await statfs(input.diskPath);
    disk = { used: (s.blocks - s.bfree) * s.bsize, total: s.blocks * s.bsize };
  } catch {
    // A vanished state_dir must not stop heartbeats; the figures read 0.
  }
  return {
    ts: now.toISOString(),
    host: input.host,
    version: input.version,
    uptime_s: Math.round(os.uptime()),
    load: [round2(l1 ?? 0), round2(l5 ?? 0), round2(l15 ?? 0)],
    memory: { used: total - os.freemem(), total },
    disk,
    running: input.running,
    queued: input.queued,
    pending_results: input.pendingResults,
    stats: { ...input.stats },
    ...(input.actions ? { actions: input.actions } : {}),
    ...(input.insecure ? { insecure: true as const } : {}),
    ...(input.degraded ? { degraded: input.degraded } : {}),
  };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
