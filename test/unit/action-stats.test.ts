/**
 * Per-action monitoring: the percentile and window math (tables), the one
 * counter after a known mix of results, its state file, the HA sensor it
 * feeds (templates rendered by real Jinja when python3 has it) and the
 * `status --actions` table.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ActionStats } from '../../src/agent/action-stats.js';
import { parseConfig } from '../../src/config/load.js';
import {
  emptyStats,
  figuresOf,
  percentile,
  pruneActions,
  pushWindow,
  recordResult,
  STATS_WINDOW,
  statsStateSchema,
  totalsOf,
} from '../../src/core/action-stats.js';
import { buildDiscovery } from '../../src/core/discovery.js';
import { makeResult, rejected, type Result, type ResultStatus } from '../../src/core/result.js';
import { formatActionsTable, formatMs, actionRows } from '../../src/cli/status-actions.js';
import type { HostRow } from '../../src/cli/status.js';
import { silentLogger } from '../../src/log.js';
import { VERSION } from '../../src/version.js';
import { tempDir } from '../helpers/fixtures.js';
import { haveJinja, renderTemplates } from '../helpers/jinja.js';

const NOW = new Date('2026-11-22T03:30:00.000Z');
let seq = 0;

function result(
  action: string | null,
  status: ResultStatus,
  duration_ms?: number,
  completed_at = NOW.toISOString(),
): Result {
  if (status === 'rejected')
    return rejected(
      'h',
      { id: `r${++seq}`, action },
      { code: 'invalid_params', error: 'x' },
      new Date(completed_at),
    );
  return makeResult(
    'h',
    { id: `r${++seq}`, action },
    { status, ...(duration_ms !== undefined ? { duration_ms } : {}), completed_at },
  );
}

describe('percentile (nearest rank)', () => {
  it.each([
    ['no values', [], 50, null],
    ['no values, p95', [], 95, null],
    ['one value', [7], 50, 7],
    ['one value, p95', [7], 95, 7],
    ['two values, p50 is the lower', [10, 20], 50, 10],
    ['two values, p95 is the upper', [10, 20], 95, 20],
    ['four values, p50', [1, 2, 3, 4], 50, 2],
    ['four values, p95', [1, 2, 3, 4], 95, 4],
    ['unsorted input', [300, 100, 200], 50, 200],
    ['1..100, p50 is the 50th', Array.from({ length: 100 }, (_, i) => i + 1), 50, 50],
    ['1..100, p95 is the 95th', Array.from({ length: 100 }, (_, i) => i + 1), 95, 95],
    ['1..20, p95 is the 19th', Array.from({ length: 20 }, (_, i) => i + 1), 95, 19],
    ['1..10, p95 is the 10th (ceil)', Array.from({ length: 10 }, (_, i) => i + 1), 95, 10],
    ['p100 is the maximum', [5, 9, 1], 100, 9],
    ['duplicates', [4, 4, 4, 8], 50, 4],
  ] as const)('%s', (_l, values, p, want) => {
    expect(percentile(values, p)).toBe(want);
  });

  it('leaves its input unsorted and refuses p outside (0, 100]', () => {
    const v = [3, 1, 2];
    percentile(v, 50);
    expect(v).toEqual([3, 1, 2]);
    for (const p of [0, -1, 101, Number.NaN])
      expect(() => percentile(v, p)).toThrow(/percentile must be in \(0, 100\]/);
  });

  it('is always an observed value, and p50 ≤ p95 (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1_000_000), { minLength: 1, maxLength: 200 }), (values) => {
        const p50 = percentile(values, 50)!;
        const p95 = percentile(values, 95)!;
        expect(values).toContain(p50);
        expect(values).toContain(p95);
        expect(p50).toBeLessThanOrEqual(p95);
        // At least 95 % of the values are at or below p95.
        expect(values.filter((v) => v <= p95).length / values.length).toBeGreaterThanOrEqual(0.95);
      }),
    );
  });
});

describe('pushWindow', () => {
  it.each([
    ['below the size', [1, 2], 3, 3, [1, 2, 3]],
    ['at the size, the oldest goes', [1, 2, 3], 4, 3, [2, 3, 4]],
    ['a window of one', [1], 2, 1, [2]],
  ] as const)('%s', (_l, start, value, size, want) => {
    const w = [...start];
    pushWindow(w, value, size);
    expect(w).toEqual(want);
  });

  it('keeps the last STATS_WINDOW (100) by default', () => {
    const w: number[] = [];
    for (let i = 1; i <= 150; i++) pushWindow(w, i);
    expect(STATS_WINDOW).toBe(100);
    expect(w).toHaveLength(100);
    expect(w[0]).toBe(51);
    expect(w.at(-1)).toBe(150);
  });
});

describe('recordResult after a known mix', () => {
  const ACTIONS = ['backup', 'restart_dns'];
  const known = (a: string) => ACTIONS.includes(a);

  function mix() {
    const state = emptyStats();
    const feed: Result[] = [
      result('backup', 'succeeded', 100),
      result('backup', 'failed', 400),
      result('backup', 'succeeded', 300),
      result('backup', 'running'), // progress: not counted
      result('backup', 'timed_out', 1000),
      result('backup', 'scheduled'), // progress: not counted
      result('backup', 'failed', 500),
      result('backup', 'rejected'),
      result('backup', 'succeeded', 200, '2026-11-22T03:29:00.000Z'),
      result('ghost', 'rejected'), // unknown_action: the global rejected only
      result(null, 'rejected'), // invalid_request: no action at all
    ];
    const changed = feed.map((r) => recordResult(state, r, known, NOW));
    return { state, changed };
  }

  it('counts exactly: 3 succeeded, 2 failed, 1 timed out, 1 rejected; p50 and p95 of the six durations', () => {
    const { state } = mix();
    expect(figuresOf(state, ACTIONS).backup).toEqual({
      count: 6,
      succeeded: 3,
      failed: 2,
      timed_out: 1,
      interrupted: 0,
      cancelled: 0,
      rejected: 1,
      // [100, 200, 300, 400, 500, 1000]: rank ceil(3) = 300, rank ceil(5.7) = 1000.
      p50_ms: 300,
      p95_ms: 1000,
      samples: 6,
      last_status: 'succeeded',
      last_at: '2026-11-22T03:29:00.000Z',
    });
  });

  it('the global stats agree, and hold what no action could take (unknown, no action)', () => {
    const { state } = mix();
    expect(totalsOf(state)).toEqual({
      executed: 6,
      succeeded: 3,
      failed: 2,
      timed_out: 1,
      rejected: 3,
      avg_duration_ms: Math.round(2500 / 6),
    });
  });

  it('only final results change anything; an unknown action gets no entry; a configured action without runs reads zeros', () => {
    const { state, changed } = mix();
    expect(changed).toEqual([true, true, true, false, true, false, true, true, true, true, true]);
    expect(Object.keys(state.actions)).toEqual(['backup']);
    expect(figuresOf(state, ACTIONS).restart_dns).toEqual({
      count: 0,
      succeeded: 0,
      failed: 0,
      timed_out: 0,
      interrupted: 0,
      cancelled: 0,
      rejected: 0,
      p50_ms: null,
      p95_ms: null,
      samples: 0,
      last_status: null,
      last_at: null,
    });
    expect(Object.keys(figuresOf(state, ACTIONS))).toEqual(ACTIONS);
  });

  it('an interrupted run counts as a run, but its cut-short duration stays out of the percentiles', () => {
    const state = emptyStats();
    recordResult(state, result('backup', 'succeeded', 100), known, NOW);
    recordResult(state, result('backup', 'interrupted', 90_000), known, NOW);
    const f = figuresOf(state, ACTIONS).backup!;
    expect(f).toMatchObject({
      count: 2,
      succeeded: 1,
      interrupted: 1,
      samples: 1,
      p95_ms: 100,
      last_status: 'interrupted',
    });
    expect(totalsOf(state)).toMatchObject({ executed: 2, succeeded: 1 });
  });

  it('a cancelled run counts as a run of its action, outside the contract totals and the percentiles', () => {
    const state = emptyStats();
    recordResult(state, result('backup', 'succeeded', 100), known, NOW);
    recordResult(state, result('backup', 'cancelled', 90_000), known, NOW);
    expect(figuresOf(state, ACTIONS).backup).toMatchObject({
      count: 2,
      succeeded: 1,
      cancelled: 1,
      samples: 1,
      last_status: 'cancelled',
    });
    expect(totalsOf(state)).toMatchObject({ executed: 2, succeeded: 1, failed: 0 });
  });

  it('a result without completed_at is stamped with now', () => {
    const state = emptyStats();
    const r = makeResult('h', { id: 'x', action: 'backup' }, { status: 'succeeded', duration_ms: 5 });
    recordResult(state, r, known, NOW);
    expect(figuresOf(state, ACTIONS).backup?.last_at).toBe(NOW.toISOString());
  });

  it('the percentiles cover the last 100 runs only', () => {
    const state = emptyStats();
    for (let i = 1; i <= 150; i++) recordResult(state, result('backup', 'succeeded', i), known, NOW);
    // The window holds 51..150.
    expect(figuresOf(state, ACTIONS).backup).toMatchObject({
      count: 150,
      samples: 100,
      p50_ms: 100,
      p95_ms: 145,
    });
  });

  it('per-action counts always add up to the global ones when every action is known (property)', () => {
    const statuses: ResultStatus[] = [
      'succeeded',
      'failed',
      'timed_out',
      'rejected',
      'interrupted',
      'running',
      'scheduled',
    ];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            action: fc.constantFrom(...ACTIONS),
            status: fc.constantFrom(...statuses),
            d: fc.nat(100_000),
          }),
          { maxLength: 300 },
        ),
        (feed) => {
          const state = emptyStats();
          for (const x of feed) recordResult(state, result(x.action, x.status, x.d), known, NOW);
          const t = totalsOf(state);
          const f = Object.values(figuresOf(state, ACTIONS));
          const sum = (k: 'count' | 'succeeded' | 'failed' | 'timed_out' | 'rejected') =>
            f.reduce((n, a) => n + a[k], 0);
          expect(sum('count')).toBe(t.executed);
          expect(sum('succeeded')).toBe(t.succeeded);
          expect(sum('failed')).toBe(t.failed);
          expect(sum('timed_out')).toBe(t.timed_out);
          expect(sum('rejected')).toBe(t.rejected);
          for (const a of f) expect(a.count).toBe(a.succeeded + a.failed + a.timed_out + a.interrupted);
        },
      ),
    );
  });

  it('pruneActions drops the figures of actions no longer configured, not the global counters', () => {
    const { state } = mix();
    expect(pruneActions(state, ['restart_dns'])).toBe(true);
    expect(state.actions).toEqual({});
    expect(totalsOf(state).executed).toBe(6);
    expect(pruneActions(state, ['restart_dns'])).toBe(false);
  });
});

describe('statsStateSchema (state_dir/stats.json)', () => {
  it('accepts what the agent writes, and slices a longer window than it keeps', () => {
    const { state } = (() => {
      const s = emptyStats();
      recordResult(s, result('backup', 'succeeded', 5), () => true, NOW);
      return { state: s };
    })();
    expect(statsStateSchema.parse(JSON.parse(JSON.stringify(state)))).toEqual(state);
    const long = {
      ...state,
      actions: { backup: { ...state.actions.backup!, durations: Array.from({ length: 250 }, (_, i) => i) } },
    };
    expect(statsStateSchema.parse(long).actions.backup!.durations).toHaveLength(STATS_WINDOW);
  });

  it.each([
    ['a negative counter', { totals: { ...emptyStats().totals, executed: -1 } }],
    ['another version', { version: 2 }],
    [
      'an action name the contract forbids',
      {
        actions: {
          'Bad Name': {
            count: 0,
            succeeded: 0,
            failed: 0,
            timed_out: 0,
            interrupted: 0,
            rejected: 0,
            durations: [],
            last_status: null,
            last_at: null,
          },
        },
      },
    ],
    [
      'an unknown status',
      {
        actions: {
          a: {
            count: 0,
            succeeded: 0,
            failed: 0,
            timed_out: 0,
            interrupted: 0,
            rejected: 0,
            durations: [],
            last_status: 'exploded',
            last_at: null,
          },
        },
      },
    ],
  ])('refuses %s', (_l, patch) => {
    expect(statsStateSchema.safeParse({ ...emptyStats(), ...patch }).success).toBe(false);
  });
});

describe('ActionStats: counters survive a restart in state_dir/stats.json', () => {
  const config = (dir: string, actions: string[]) =>
    ({ state_dir: dir, actions: Object.fromEntries(actions.map((a) => [a, {}])) }) as never;

  it('writes only after a change, and a new instance reads the same figures', () => {
    const dir = tempDir();
    const a = started(new ActionStats(config(dir, ['backup', 'restart_dns']), silentLogger()));
    a.save();
    expect(existsSync(`${dir}/stats.json`)).toBe(false); // nothing happened: nothing written
    a.record(result('backup', 'succeeded', 120));
    a.record(result('backup', 'failed', 80));
    a.record(result('ghost', 'rejected'));
    a.save();
    const written = readFileSync(`${dir}/stats.json`, 'utf8');
    a.save(); // unchanged: not rewritten
    expect(readFileSync(`${dir}/stats.json`, 'utf8')).toBe(written);

    const b = started(new ActionStats(config(dir, ['backup', 'restart_dns']), silentLogger()));
    expect(b.totals()).toEqual(a.totals());
    expect(b.actions()).toEqual(a.actions());
    expect(b.totals()).toEqual({
      executed: 2,
      succeeded: 1,
      failed: 1,
      timed_out: 0,
      rejected: 1,
      avg_duration_ms: 100,
    });
    expect(b.actions().backup).toMatchObject({ count: 2, p50_ms: 80, p95_ms: 120 });
  });

  it('an action removed from config loses its figures at the next start', () => {
    const dir = tempDir();
    const a = started(new ActionStats(config(dir, ['backup', 'old']), silentLogger()));
    a.record(result('old', 'succeeded', 1));
    a.record(result('backup', 'succeeded', 2));
    a.save();
    const b = started(new ActionStats(config(dir, ['backup']), silentLogger()));
    expect(Object.keys(b.actions())).toEqual(['backup']);
    expect(b.totals().executed).toBe(2);
    b.save(); // the pruned state is written back
    expect(
      Object.keys((JSON.parse(readFileSync(`${dir}/stats.json`, 'utf8')) as { actions: object }).actions),
    ).toEqual(['backup']);
  });

  it.each([
    ['not JSON', '{"version":1,"totals":'],
    ['the wrong shape', '{"version":1,"totals":{"executed":"many"},"actions":{}}'],
  ])('a corrupt file (%s) is moved aside and the counters start from zero', (_l, text) => {
    const dir = tempDir();
    writeFileSync(`${dir}/stats.json`, text);
    const a = started(new ActionStats(config(dir, ['backup']), silentLogger()));
    expect(a.totals()).toEqual({
      executed: 0,
      succeeded: 0,
      failed: 0,
      timed_out: 0,
      rejected: 0,
      avg_duration_ms: 0,
    });
    expect(readdirSync(dir).some((f) => f.startsWith('stats.json.corrupt-'))).toBe(true);
    a.record(result('backup', 'succeeded', 3));
    a.save();
    expect(started(new ActionStats(config(dir, ['backup']), silentLogger())).actions().backup?.count).toBe(1);
  });
});

describe('the HA sensor of each action', () => {
  const cfg = parseConfig(
    `host: pihole-1
actions:
  restart_dns: { argv: [pihole, restartdns], button: true, name: Restart DNS }
  apply_updates: { steps: [[apt-get, update]] }
  0day: { argv: ["true"] }
`,
    '/nonexistent/agent.yaml',
    {},
  );
  const msgs = buildDiscovery({
    host: cfg.host,
    prefix: cfg.mqtt.prefix,
    discoveryPrefix: cfg.discovery.prefix,
    version: VERSION,
    actions: cfg.actions,
  });
  const stats = msgs.filter((m) => /\/sensor\/pihole-1\/stats_/.test(m.topic));

  it('one per action, button or not; a diagnostic duration in ms from the heartbeat, available while online', () => {
    expect(stats.map((m) => m.topic)).toEqual([
      'homeassistant/sensor/pihole-1/stats_restart_dns/config',
      'homeassistant/sensor/pihole-1/stats_apply_updates/config',
      'homeassistant/sensor/pihole-1/stats_0day/config',
    ]);
    expect(stats[0]!.payload).toMatchObject({
      name: 'Restart DNS: p95 duration',
      unique_id: 'homelab_cmd_pihole-1_stats_restart_dns',
      default_entity_id: 'sensor.pihole_1_stats_restart_dns',
      state_topic: 'homelab/pihole-1/heartbeat',
      json_attributes_topic: 'homelab/pihole-1/heartbeat',
      device_class: 'duration',
      state_class: 'measurement',
      unit_of_measurement: 'ms',
      entity_category: 'diagnostic',
      availability_topic: 'homelab/pihole-1/status',
    });
    expect(stats[1]!.payload.name).toBe('Apply updates: p95 duration');
  });

  // HA renders value_template and json_attributes_template with Jinja and `value_json` = the parsed
  // heartbeat; "None" is its "unknown" for a numeric sensor. Rendered here by the real Jinja.
  if (!haveJinja)
    console.warn(
      'SKIPPED: rendering the HA templates needs python3 with jinja2 (apt-get install python3-jinja2)',
    );
  const render = (templates: string[], heartbeats: unknown[]): string[][] =>
    renderTemplates(templates, heartbeats);

  it.skipIf(!haveJinja).each([
    ['restart_dns', 0],
    ['0day (a name starting with a digit)', 2],
  ] as const)(
    'templates of %s: the p95 and the counters; "None" and {} when the entry or the field is missing',
    (_l, i) => {
      const p = stats[i]!.payload;
      const name = Object.keys(cfg.actions)[i]!;
      const entry = {
        count: 6,
        succeeded: 3,
        failed: 2,
        timed_out: 1,
        interrupted: 0,
        rejected: 1,
        p50_ms: 300,
        p95_ms: 1000,
        samples: 6,
        last_status: 'failed',
        last_at: NOW.toISOString(),
      };
      const out = render(
        [String(p.value_template), String(p.json_attributes_template)],
        [
          { actions: { [name]: entry } },
          { actions: { [name]: { ...entry, p95_ms: null } } },
          { actions: {} },
          { stats: {} },
        ],
      );
      expect(out[0]![0]).toBe('1000');
      expect(JSON.parse(out[0]![1]!)).toEqual(entry);
      expect(out[1]![0]).toBe('None'); // no run yet
      expect(out[2]).toEqual(['None', '{}']); // the action is missing from the heartbeat
      expect(out[3]).toEqual(['None', '{}']); // a heartbeat without the extension (an older agent)
    },
  );
});

describe('status --actions', () => {
  const figures = (over: Partial<ReturnType<typeof figuresOf>[string]> = {}) => ({
    count: 6,
    succeeded: 3,
    failed: 2,
    timed_out: 1,
    interrupted: 0,
    rejected: 1,
    p50_ms: 300,
    p95_ms: 61_000,
    samples: 6,
    last_status: 'failed' as const,
    last_at: '2026-11-22T03:25:00.000Z',
    ...over,
  });
  const hb = (actions: Record<string, ReturnType<typeof figures>> | undefined) =>
    ({
      ts: NOW.toISOString(),
      host: 'x',
      version: VERSION,
      uptime_s: 1,
      load: [0, 0, 0],
      memory: { used: 1, total: 2 },
      disk: { used: 1, total: 2 },
      running: 0,
      queued: 0,
      pending_results: 0,
      stats: { executed: 0, succeeded: 0, failed: 0, timed_out: 0, rejected: 0, avg_duration_ms: 0 },
      ...(actions ? { actions } : {}),
    }) as HostRow['heartbeat'];
  const rows: HostRow[] = [
    {
      host: 'nas',
      status: 'online',
      heartbeat: hb({
        backup: figures(),
        scrub: figures({
          count: 0,
          succeeded: 0,
          failed: 0,
          timed_out: 0,
          rejected: 0,
          p50_ms: null,
          p95_ms: null,
          samples: 0,
          last_status: null,
          last_at: null,
        }),
      }),
    },
    { host: 'old-pi', status: 'online', heartbeat: hb(undefined) },
    { host: 'gone', status: 'offline' },
  ];

  it.each([
    [null, '-'],
    [0, '0ms'],
    [999, '999ms'],
    [1000, '1.0s'],
    [12_345, '12.3s'],
    [61_000, '1.0m'],
    [5_400_000, '1.5h'],
  ] as const)('formatMs(%s) = %s', (ms, want) => {
    expect(formatMs(ms)).toBe(want);
  });

  it('prints one row per host and action, plain text, saying why a host has none', () => {
    const text = formatActionsTable(rows, NOW);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(
      /^HOST\s+ACTION\s+COUNT\s+OK\s+FAILED\s+TIMED OUT\s+REJECTED\s+P50\s+P95\s+LAST$/,
    );
    expect(lines[1]).toMatch(/^nas\s+backup\s+6\s+3\s+2\s+1\s+1\s+300ms\s+1\.0m\s+failed 5m ago$/);
    expect(lines[2]).toMatch(/^nas\s+scrub\s+0\s+0\s+0\s+0\s+0\s+-\s+-\s+-$/);
    expect(lines[3]).toMatch(/^old-pi\s+\(no per-action figures: upgrade this agent\)$/);
    expect(lines[4]).toMatch(/^gone\s+\(no heartbeat\)$/);
    expect(text).not.toContain('\u001b'); // no colour codes
  });

  it('--json rows are flat, one per host and action', () => {
    expect(actionRows(rows)).toEqual([
      { host: 'nas', status: 'online', action: 'backup', ...figures() },
      {
        host: 'nas',
        status: 'online',
        action: 'scrub',
        ...figures({
          count: 0,
          succeeded: 0,
          failed: 0,
          timed_out: 0,
          rejected: 0,
          p50_ms: null,
          p95_ms: null,
          samples: 0,
          last_status: null,
          last_at: null,
        }),
      },
    ]);
  });
});

/** Built and started, as the agent does: the constructor reads nothing. */
function started<T extends { start(): void }>(part: T): T {
  part.start();
  return part;
}
