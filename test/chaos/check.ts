/**
 * The chaos run's invariants, checked id by id from what was recorded (docs/operations.md § Chaos run):
 * the command log (runs), every message seen on P/+/result/+ and the reply topics, the retained state
 * at the end, and what /proc said about commands cut by an agent SIGKILL.
 */
import type { LogLine } from './world.js';

export const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted']);

export interface Seen {
  id: string;
  status: string;
  error?: string;
  error_code?: string;
  /** 'result': P/H/result/ID as it came; 'retained': the retained state at the end; 'reply': the response topic. */
  where: 'result' | 'retained' | 'reply';
}

export interface Sent {
  id: string;
  host: string;
  qos: 0 | 1;
  rr: boolean;
  acked: boolean;
  /** Milliseconds from the start of the run to the broker's PUBACK. */
  ackedAt?: number;
}

export interface Cut {
  id: string;
  pgid: number;
  /** Live processes of its group when its `interrupted` arrived (undefined: never arrived). */
  liveAtInterrupted?: number[];
  liveAtEnd?: number[];
}

export interface Record {
  seed: number;
  broker: string;
  sent: Map<string, Sent>;
  resends: number;
  seen: Seen[];
  log: LogLine[];
  cuts: Map<string, Cut>;
  faults: string[];
  /** Milliseconds from the end of the faults until every id was answered (or the deadline). */
  settledMs?: number;
}

export interface Verdict {
  name: string;
  /** The ids that break it (empty: it held). */
  ids: string[];
  detail: string[];
}

const statusOf = (s: Seen) => (s.status === 'rejected' && s.error ? `rejected/${s.error}` : s.status);

export function judge(r: Record): { verdicts: Verdict[]; table: string } {
  const runs = new Map<string, number>();
  for (const l of r.log) if (l.what === 'start') runs.set(l.id, (runs.get(l.id) ?? 0) + 1);
  const finals = new Map<string, Seen[]>();
  const received = new Set<string>(runs.keys());
  for (const s of r.seen) {
    if (s.where !== 'reply') received.add(s.id);
    if (s.where === 'reply' || !FINAL.has(s.status)) continue;
    finals.set(s.id, [...(finals.get(s.id) ?? []), s]);
  }
  const ours = (id: string) => r.sent.has(id);

  const duplicated = [...runs].filter(([id, n]) => ours(id) && n > 1).map(([id]) => id);
  const changed = [...finals].filter(([id, f]) => ours(id) && new Set(f.map(statusOf)).size > 1);
  // A `shutting_down` rejection later followed by a run of the same id, kept apart from every other
  // change of final so that the one seen today (docs/operations.md § Chaos run) hides no other.
  const afterShutdown = ([, f]: [string, Seen[]]) =>
    f.slice(0, -1).every((x) => x.status === 'rejected' && x.error_code === 'shutting_down');
  const contradicted = changed.filter((e) => !afterShutdown(e)).map(([id]) => id);
  const rerunAfterShutdown = changed.filter(afterShutdown).map(([id]) => id);
  const acked = [...r.sent.values()].filter((s) => s.qos === 1 && s.acked).map((s) => s.id);
  const lostAcked = acked.filter((id) => !finals.has(id));
  const noFinal = [...received].filter((id) => ours(id) && !finals.has(id));
  const cuts = [...r.cuts.values()];
  const lastFinal = (id: string) =>
    finals
      .get(id)
      ?.filter((s) => s.where === 'result')
      .at(-1);
  const notInterrupted = cuts.filter((c) => lastFinal(c.id)?.status !== 'interrupted').map((c) => c.id);
  const stillRunning = cuts
    .filter((c) => (c.liveAtInterrupted?.length ?? 0) > 0 || (c.liveAtEnd?.length ?? 0) > 0)
    .map((c) => c.id);
  const rr = [...r.sent.values()].filter((s) => s.rr && finals.has(s.id));
  const replied = new Set(r.seen.filter((s) => s.where === 'reply' && FINAL.has(s.status)).map((s) => s.id));
  const rrMissing = rr.filter((s) => !replied.has(s.id)).map((s) => s.id);

  const describe = (id: string) =>
    `${id}${r.sent.get(id)?.ackedAt !== undefined ? ` (acked @${r.sent.get(id)!.ackedAt}ms)` : ''}: runs ${runs.get(id) ?? 0}, seen ${(finals.get(id) ?? []).map((s) => `${s.where}:${statusOf(s)}`).join(' → ') || 'no final'}`;
  const verdict = (name: string, ids: string[]): Verdict => ({
    name,
    ids,
    detail: ids.slice(0, 20).map(describe),
  });
  const verdicts = [
    verdict('at most one run per id', duplicated),
    verdict('exactly one final per received id (none missing)', noFinal),
    verdict('no final replaced by a different final', contradicted),
    verdict('no shutting_down rejection replaced by a later run of the id', rerunAfterShutdown),
    verdict('every acknowledged QoS 1 request gets a final (none lost)', lostAcked),
    verdict('every command cut by an agent SIGKILL is reported interrupted', notInterrupted),
    verdict('no command cut by an agent SIGKILL is running afterwards', stillRunning),
    verdict('every final of an MQTT 5 request reaches its response topic', rrMissing),
  ];

  const byStatus = new Map<string, number>();
  for (const id of finals.keys()) {
    if (!ours(id)) continue;
    const s = statusOf(lastFinal(id) ?? finals.get(id)!.at(-1)!);
    byStatus.set(s, (byStatus.get(s) ?? 0) + 1);
  }
  const sent = [...r.sent.values()];
  const rows: [string, string | number][] = [
    ['seed', r.seed],
    ['broker', r.broker],
    ['faults', r.faults.length],
    ['settled after', `${Math.round((r.settledMs ?? 0) / 1000)} s`],
    [
      'ids sent (QoS 1 / QoS 0 / MQTT 5 rr)',
      `${sent.length} (${acked.length + sent.filter((s) => s.qos === 1 && !s.acked).length} / ${sent.filter((s) => s.qos === 0).length} / ${sent.filter((s) => s.rr).length})`,
    ],
    ['deliberate re-sends', r.resends],
    ['ids acknowledged (QoS 1 PUBACK)', acked.length],
    ['ids received by an agent', [...received].filter(ours).length],
    ['runs (start lines)', [...runs].filter(([id]) => ours(id)).reduce((a, [, n]) => a + n, 0)],
    [
      'finals by status',
      [...byStatus]
        .sort()
        .map(([s, n]) => `${s} ${n}`)
        .join(', '),
    ],
    ['lost (acknowledged, no final)', lostAcked.length],
    ['received, no final', noFinal.length],
    ['duplicated runs', duplicated.length],
    ['contradicted finals', contradicted.length],
    ['shutting_down rejections later run', rerunAfterShutdown.length],
    ['cut by agent SIGKILL', cuts.length],
    ['cut, not reported interrupted', notInterrupted.length],
    ['cut, still running afterwards', stillRunning.length],
    ['MQTT 5 finals missing on the response topic', `${rrMissing.length} of ${rr.length}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const table = rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
  return { verdicts, table };
}
