/**
 * `homelab-cmd status` against hostile retained messages on a real broker (docs/security.md § What
 * `homelab-cmd status` prints): nothing another host wrote reaches the terminal raw, and one bad host's
 * status or heartbeat costs only its own row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningBroker } from '../../src/broker/broker.js';
import { runCli, spawnCli } from '../helpers/agent.js';
import { TestClient } from '../helpers/mqtt.js';
import { until } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

let broker: RunningBroker;
let url: string;
let pub: TestClient;

// Every character docs/security.md says status never prints (a table, not a regex: lint forbids controls there).
const isHidden = (c: number) =>
  c <= 0x1f ||
  (c >= 0x7f && c <= 0x9f) ||
  c === 0x061c ||
  (c >= 0x200b && c <= 0x200f) ||
  (c >= 0x2028 && c <= 0x202e) ||
  (c >= 0x2060 && c <= 0x2069) ||
  c === 0xfeff;
const hidden = (s: string) =>
  s.split('\n').filter((line) => [...line].some((ch) => isHidden(ch.codePointAt(0) ?? 0)));

const heartbeat = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    ts: new Date().toISOString(),
    host: 'good-1',
    version: '0.1.0',
    uptime_s: 10,
    load: [0.5, 0.25, 0.125],
    memory: { used: 50, total: 100 },
    disk: { used: 25, total: 100 },
    running: 1,
    queued: 0,
    pending_results: 0,
    stats: { executed: 0, succeeded: 0, failed: 0, timed_out: 0, rejected: 0, avg_duration_ms: 0 },
    ...over,
  });

const RETAINED: [string, string][] = [
  ['homelab/good-1/status', 'online'],
  ['homelab/good-1/heartbeat', heartbeat()],
  [
    'homelab/good-1/result',
    JSON.stringify({ id: 'r1', host: 'good-1', action: 'uptime', status: 'succeeded', exit_code: 0 }),
  ],
  ['homelab/evil-esc/status', 'online\u001b[2J\u001b[31m\u0007\u009b'],
  [
    'homelab/evil-esc/heartbeat',
    heartbeat({
      host: 'evil-esc',
      actions: {
        'a\u202etxt.exe\u001b[0m': {
          count: 1,
          succeeded: 1,
          failed: 0,
          timed_out: 0,
          interrupted: 0,
          rejected: 0,
          p50_ms: 5,
          p95_ms: 5,
          samples: 1,
          last_status: 'succeeded\u2028\u200b\ufeff',
          last_at: null,
        },
      },
    }),
  ],
  [
    'homelab/evil-esc/result',
    JSON.stringify({
      id: 'x',
      host: 'evil-esc',
      action: 'up\u2066\u2069\u200e',
      status: 'failed\r\u001b]0;pwned\u0007',
      completed_at: '\u061cnow',
    }),
  ],
  ['homelab/bad-json/status', 'online'],
  ['homelab/bad-json/heartbeat', 'not json{'],
  ['homelab/bad-array/heartbeat', '[1,2,3]'],
  ['homelab/bad-types/heartbeat', JSON.stringify({ ts: 5, load: 'high', memory: [], running: -1 })],
  ['homelab/bad-huge/status', `online${'x'.repeat(100_000)}`],
  ['homelab/bad-huge/heartbeat', heartbeat({ host: 'bad-huge', version: 'v'.repeat(300_000) })],
  ['homelab/bad-deep/heartbeat', `{"ts":"x","load":${'['.repeat(50_000)}${']'.repeat(50_000)}}`],
  [
    'homelab/bad-deep/result',
    `{"id":"x","host":"bad-deep","extra":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`,
  ],
  ['homelab/bad-liar/heartbeat', heartbeat({ host: 'good-1' })],
  ['homelab/\u001b[31mred\u001b[0m/status', 'online'],
  ['homelab/a\u202eb/status', 'online'],
];

beforeAll(async () => {
  broker = await startTestBroker();
  url = `mqtt://127.0.0.1:${broker.port}`;
  pub = await TestClient.connect(url);
  for (const [topic, payload] of RETAINED) await pub.pub(topic, payload, { retain: true });
});
afterAll(async () => {
  await pub.end();
  await broker.close();
});

describe('homelab-cmd status with hostile retained messages', () => {
  it('the table: every host a row, nothing hidden printed, bad ones say what is wrong', async () => {
    const r = await runCli(['status', '--url', url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(hidden(r.stdout)).toEqual([]);
    const line = (host: string) => r.stdout.split('\n').find((l) => l.startsWith(`${host} `)) ?? '';
    expect(line('good-1')).toMatch(
      /^good-1\s+online\s+\d+s ago\s+0\.50 0\.25 0\.13\s+50%\s+25%\s+1\s+uptime succeeded/,
    );
    expect(line('good-1')).not.toMatch(/heartbeat:|status:|result:/);
    expect(line('evil-esc')).toMatch(/^evil-esc\s+online\[2J\[31m/);
    expect(line('bad-json')).toMatch(/heartbeat: not valid JSON/);
    expect(line('bad-array')).toMatch(/heartbeat: the message: /);
    expect(line('bad-types')).toMatch(/heartbeat: ts: /);
    expect(line('bad-huge')).toMatch(/heartbeat: \d+ bytes, more than/);
    expect(line('bad-huge').length).toBeLessThan(400);
    expect(line('bad-deep')).toMatch(/heartbeat: load/);
    expect(line('bad-liar')).toMatch(/names host "good-1"/);
    expect(r.stdout).toMatch(/^\[31mred\[0m\s+online.*host: the topic names no valid host id/m);
    expect(r.stdout).toMatch(/^ab\s+online/m);
  }, 60_000);

  it('--watch redraws the same printable table', async () => {
    const w = spawnCli(['status', '--watch', '--interval', '1', '--url', url]);
    try {
      await until(() => /^bad-liar .*\n[\s\S]*^bad-liar /m.test(w.output()), 30_000, 'two redraws');
    } finally {
      w.proc.kill('SIGINT');
    }
    expect((await w.exited).code).toBe(0);
    expect(hidden(w.output())).toEqual([]);
    expect(w.output()).toMatch(/^bad-array .*heartbeat: the message: /m);
  }, 60_000);

  it('--actions: the same hosts, names and statuses made printable', async () => {
    const r = await runCli(['status', '--actions', '--url', url]);
    expect(r.code).toBe(0);
    expect(hidden(r.stdout)).toEqual([]);
    expect(r.stdout).toMatch(/^evil-esc\s+atxt\.exe\[0m\s+1\s+1\s+0\s+0\s+0\s+5ms\s+5ms\s+succeeded$/m);
    expect(r.stdout).toMatch(/^bad-array\s+\(heartbeat: the message: /m);
    expect(r.stdout).toMatch(/^good-1\s+\(no per-action figures/m);
  }, 60_000);

  it('--json stays JSON, with an errors field on bad rows and only known heartbeat fields', async () => {
    const r = await runCli(['status', '--json', '--url', url]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { host: string; errors?: string[]; heartbeat?: object }[];
    const byHost = new Map(rows.map((x) => [x.host, x]));
    expect(byHost.get('good-1')?.errors).toBeUndefined();
    expect(byHost.get('good-1')?.heartbeat).toMatchObject({ load: [0.5, 0.25, 0.125] });
    expect(byHost.get('bad-array')?.errors?.[0]).toMatch(/^heartbeat:/);
    expect(byHost.get('bad-deep')?.heartbeat).toBeUndefined();
    expect(r.stdout.length).toBeLessThan(100_000);
  }, 60_000);
});
