/**
 * Per-action monitoring end to end: a real agent and broker run a known mix
 * (fake executables that exit 0, exit 1, and outlive a short timeout), then
 * the heartbeat's `actions`, the HA sensor configs, a restart that keeps the
 * counters, and `homelab-cmd status --actions` (built by test/global-build.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Heartbeat } from '../../src/agent/heartbeat.js';
import type { Agent } from '../../src/agent/agent.js';
import type { Result } from '../../src/core/result.js';
import { runCli, spawnCli } from '../helpers/agent.js';
import { fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';
import { until, withDeadline } from '../helpers/wait.js';

const host = 'mon-1';
const HB = `homelab/${host}/heartbeat`;
const h = new Harness();
let ha: TestClient;
let agent: Agent;
const dir = tempDir();
const stateDir = `${dir}/state`;
fakeBin(dir, 'ok-cmd');
fakeBin(dir, 'bad-cmd', 'exit 1');
const bin = fakeBin(dir, 'slow-cmd', 'sleep 20');
const ACTIONS = {
  ok: { argv: ['ok-cmd'], button: true, name: 'All good' },
  bad: { argv: ['bad-cmd'] },
  slow: { argv: ['slow-cmd'], timeout: '300ms' },
};
const opts = { binDir: bin, stateDir, extra: { heartbeat: { interval: '250ms' } } };

beforeAll(async () => {
  await h.start();
  ha = await TestClient.connect(h.url);
  await ha.sub(`homeassistant/sensor/${host}/#`, HB);
  agent = (await h.agent(host, ACTIONS, opts)).agent;
});
afterAll(async () => {
  await ha.end();
  await h.stop();
});

/** Nearest rank, computed independently of the code under test. */
const rank = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.ceil((p / 100) * values.length) - 1];

describe('a known mix of results', () => {
  const results: Result[] = [];
  const durations = (action: string) =>
    results
      .filter((r) => r.action === action && r.duration_ms !== undefined && r.status !== 'rejected')
      .map((r) => r.duration_ms!);

  it('3 succeeded, 2 failed, 1 timed out, 1 rejected of an action, 1 unknown action', async () => {
    for (const [action, body] of [
      ['ok', {}],
      ['bad', {}],
      ['ok', {}],
      ['slow', {}],
      ['bad', {}],
      ['ok', {}],
      ['ok', { params: { nope: 'x' } }], // invalid_params: rejected, attributed to ok
      ['ghost', {}], // unknown_action: only the global rejected
    ] as const) {
      results.push(await h.request(host, { action, ...body }, { ms: 20_000 }));
    }
    expect(results.map((r) => r.status)).toEqual([
      'succeeded',
      'failed',
      'succeeded',
      'timed_out',
      'failed',
      'succeeded',
      'rejected',
      'rejected',
    ]);
  });

  it('the heartbeat counts them per action, with exact p50/p95 of the real durations', async () => {
    const hb = await ha.waitJson<Heartbeat>(
      HB,
      (x) => x.stats.executed === 6 && x.stats.rejected === 2,
      15_000,
    );
    const total = results.reduce((n, r) => n + (r.status === 'rejected' ? 0 : (r.duration_ms ?? 0)), 0);
    expect(hb.stats).toEqual({
      executed: 6,
      succeeded: 3,
      failed: 2,
      timed_out: 1,
      rejected: 2,
      avg_duration_ms: Math.round(total / 6),
    });
    expect(Object.keys(hb.actions ?? {})).toEqual(['ok', 'bad', 'slow']);
    const ok = durations('ok');
    expect(ok).toHaveLength(3);
    expect(hb.actions?.ok).toEqual({
      count: 3,
      succeeded: 3,
      failed: 0,
      timed_out: 0,
      interrupted: 0,
      cancelled: 0,
      rejected: 1,
      p50_ms: rank(ok, 50),
      p95_ms: rank(ok, 95),
      samples: 3,
      last_status: 'rejected',
      last_at: results[6]!.completed_at,
    });
    const bad = durations('bad');
    expect(hb.actions?.bad).toMatchObject({
      count: 2,
      succeeded: 0,
      failed: 2,
      timed_out: 0,
      rejected: 0,
      p50_ms: rank(bad, 50),
      p95_ms: rank(bad, 95),
      samples: 2,
      last_status: 'failed',
      last_at: results[4]!.completed_at,
    });
    expect(hb.actions?.slow).toMatchObject({ count: 1, timed_out: 1, samples: 1, last_status: 'timed_out' });
    // A timed-out run's duration is the wait until it was killed: at least its 300 ms timeout.
    expect(hb.actions?.slow?.p95_ms).toBe(results[3]!.duration_ms);
    expect(hb.actions?.slow?.p95_ms).toBeGreaterThanOrEqual(300);
    expect(JSON.stringify(hb)).not.toContain('ghost');
  });

  it('publishes one diagnostic sensor per action, reading its entry of the heartbeat', async () => {
    const cfg = await ha.waitJson<Record<string, unknown>>(`homeassistant/sensor/${host}/stats_ok/config`);
    expect(cfg).toMatchObject({
      name: 'All good: p95 duration',
      unique_id: `homelab_cmd_${host}_stats_ok`,
      default_entity_id: 'sensor.mon_1_stats_ok',
      state_topic: HB,
      json_attributes_topic: HB,
      device_class: 'duration',
      state_class: 'measurement',
      unit_of_measurement: 'ms',
      entity_category: 'diagnostic',
      availability_topic: `homelab/${host}/status`,
    });
    expect(cfg.value_template).toContain("['ok']");
    expect(cfg.json_attributes_template).toContain("['ok']");
    for (const a of ['bad', 'slow']) await ha.waitJson(`homeassistant/sensor/${host}/stats_${a}/config`);
    expect(ha.messages.filter((m) => m.topic.includes('/stats_ghost/'))).toEqual([]);
  });

  it('a restart keeps the counters; an action removed from config loses its figures and its sensor', async () => {
    await h.stopAgent(agent);
    const before = ha.messages.length;
    const { ok, slow } = ACTIONS;
    agent = (await h.agent(host, { ok, slow }, opts)).agent;
    const cleared = await ha.wait(
      (m) => ha.messages.indexOf(m) >= before && m.topic === `homeassistant/sensor/${host}/stats_bad/config`,
      15_000,
      'stats_bad cleared',
    );
    expect(cleared.text).toBe('');
    const hb = await ha.wait(
      (m) => ha.messages.indexOf(m) >= before && m.topic === HB,
      15_000,
      'a heartbeat after the restart',
    );
    const after = JSON.parse(hb.text) as Heartbeat;
    expect(Object.keys(after.actions ?? {})).toEqual(['ok', 'slow']);
    expect(after.actions?.ok).toMatchObject({ count: 3, succeeded: 3, rejected: 1 });
    expect(after.actions?.slow).toMatchObject({ count: 1, timed_out: 1 });
    // The global counters are the same counters: they survive too (bad's runs stay counted there).
    expect(after.stats).toMatchObject({ executed: 6, succeeded: 3, failed: 2, timed_out: 1, rejected: 2 });
  });

  it('homelab-cmd status --actions prints them, as a table and as JSON', async () => {
    const text = await runCli(['status', '--actions', '--url', h.url]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^HOST\s+ACTION\s+COUNT\s+OK\s+FAILED\s+TIMED OUT\s+REJECTED\s+P50\s+P95\s+LAST$/,
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^mon-1\s+ok\s+3\s+3\s+0\s+0\s+1\s+\d+ms\s+\d+ms\s+rejected \d+s ago$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^mon-1\s+slow\s+1\s+0\s+0\s+1\s+0\s+\d+ms\s+\d+ms\s+timed_out \d+s ago$/),
    );
    expect(text.stdout).not.toContain('\u001b'); // no colour codes

    const json = await runCli(['status', '--actions', '--json', '--url', h.url]);
    expect(json.code, json.stderr).toBe(0);
    const rows = (JSON.parse(json.stdout) as { host: string; action: string }[]).filter(
      (r) => r.host === host,
    );
    expect(rows.map((r) => r.action)).toEqual(['ok', 'slow']);
    const ok = durations('ok');
    expect(rows[0]).toEqual({
      host,
      status: 'online',
      action: 'ok',
      count: 3,
      succeeded: 3,
      failed: 0,
      timed_out: 0,
      interrupted: 0,
      rejected: 1,
      p50_ms: rank(ok, 50),
      p95_ms: rank(ok, 95),
      samples: 3,
      last_status: 'rejected',
      last_at: results[6]!.completed_at,
    });
  });

  it('status --actions --watch redraws as the heartbeats change, without colour when piped', async () => {
    const p = spawnCli(['status', '--actions', '--url', h.url, '--watch', '--interval', '0.2']);
    try {
      await until(() => /^mon-1\s+ok\s+3\s+3\s/m.test(p.output()), 15_000, 'the table with ok at 3 runs');
      expect((await h.request(host, { action: 'ok' })).status).toBe('succeeded');
      await until(
        () => /^mon-1\s+ok\s+4\s+4\s+0\s+0\s+1\s.*succeeded \d+s ago$/m.test(p.output()),
        15_000,
        'a redraw with ok at 4 runs',
      );
      expect(p.output()).not.toContain('\u001b');
    } finally {
      p.proc.kill('SIGINT');
    }
    expect((await withDeadline(p.exited, 5000, 'status to exit')).code).toBe(0);
  });
});
