/** Live output with send --follow, status --watch, and explain: the CLI for 2 a.m. debugging. */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/agent.js';
import { REPO, calls, fakeBin, tempDir, writeConfig } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { until, withDeadline } from '../helpers/wait.js';

const h = new Harness();
let dir: string;
beforeAll(async () => {
  await h.start();
  dir = tempDir();
  // An apt-get stand-in that prints a line at a time, like a real upgrade.
  fakeBin(
    dir,
    'apt-get',
    'for i in 1 2 3; do echo "Get:$i package-$i"; sleep 0.15; done; echo "warning: held back" >&2',
  );
  await h.agent(
    'eco-host',
    {
      apply_updates: {
        steps: [
          ['apt-get', 'update'],
          ['apt-get', '-y', 'upgrade'],
        ],
      },
      flood: { argv: ['sh', '-c', 'yes line | head -n 5000'] },
    },
    { binDir: `${dir}/bin` },
  );
});
afterAll(() => h.stop());

describe('live output', () => {
  it('streams lines to P/H/output/ID as they come, before the final result, not retained', async () => {
    await h.ctl.sub('homelab/eco-host/output/+');
    const r = await h.request('eco-host', { id: 'live-1', action: 'apply_updates' });
    expect(r.status).toBe('succeeded');
    const msgs = h.ctl.on('homelab/eco-host/output/live-1').map(
      (m) =>
        ({ ...JSON.parse(m.text), retain: m.packet.retain }) as {
          stream: string;
          lines: string[];
          seq: number;
          retain: boolean;
        },
    );
    const stdout = msgs.filter((m) => m.stream === 'stdout').flatMap((m) => m.lines);
    expect(stdout).toEqual([
      'Get:1 package-1',
      'Get:2 package-2',
      'Get:3 package-3',
      'Get:1 package-1',
      'Get:2 package-2',
      'Get:3 package-3',
    ]);
    expect(msgs.filter((m) => m.stream === 'stderr').flatMap((m) => m.lines)).toEqual([
      'warning: held back',
      'warning: held back',
    ]);
    expect(msgs.length).toBeGreaterThan(2); // several batches: it streamed, not one dump at the end
    expect(msgs.every((m) => !m.retain)).toBe(true);
    // Every output message came before the final result on the id's topic.
    const lastOutput = Math.max(
      ...h.ctl.messages.map((m, i) => (m.topic === 'homelab/eco-host/output/live-1' ? i : -1)),
    );
    const final = h.ctl.messages.findIndex(
      (m) => m.topic === 'homelab/eco-host/result/live-1' && m.text.includes('succeeded'),
    );
    expect(lastOutput).toBeLessThan(final);
  });

  it('is rate-limited and capped like results', async () => {
    const before = h.ctl.messages.length;
    const r = await h.request('eco-host', { id: 'live-2', action: 'flood' });
    expect(r.stdout_truncated).toBe(true); // 25,000 bytes against max_output 10,000
    const msgs = h.ctl.messages
      .slice(before)
      .filter((m) => m.topic === 'homelab/eco-host/output/live-2')
      .map((m) => JSON.parse(m.text) as { lines: string[]; truncated?: boolean });
    // 5000 lines in a few batches (at most one per 100 ms), never one message per line.
    expect(msgs.length).toBeLessThan(20);
    expect(msgs.flatMap((m) => m.lines).join('\n').length).toBeLessThanOrEqual(10_000);
    expect(msgs.at(-1)?.truncated).toBe(true);
  });

  it('homelab-cmd send --follow prints the lines live, then the result', async () => {
    const r = await runCli(['send', 'eco-host', 'apply_updates', '--follow', '--url', h.url]);
    expect(r.code).toBe(0);
    const jsonStart = r.stdout.indexOf('{');
    expect(r.stdout.slice(0, jsonStart)).toContain('Get:1 package-1\nGet:2 package-2\nGet:3 package-3');
    expect(JSON.parse(r.stdout.slice(jsonStart))).toMatchObject({
      status: 'succeeded',
      action: 'apply_updates',
    });
    expect(r.stderr).toContain('warning: held back');
  });
});

describe('status --watch', () => {
  it('redraws the table until interrupted, readable without colour when piped', async () => {
    const p = spawnCli(['status', '--url', h.url, '--watch', '--interval', '0.2']);
    await until(() => (p.output().match(/^HOST\s+STATUS/gm) ?? []).length >= 2, 10_000, 'two redraws');
    expect(p.output()).toMatch(/^eco-host\s+online/m);
    expect(p.output()).not.toContain('\x1b['); // not a terminal: no escape codes
    p.proc.kill('SIGINT');
    expect((await withDeadline(p.exited, 5000, 'status to exit')).code).toBe(0);
  });
});

describe('explain', () => {
  const config = () => {
    const d = tempDir();
    fakeBin(d, 'systemctl');
    return writeConfig(d, {
      host: 'pihole-1',
      execution: { enabled: true, path: `${d}/bin:/usr/bin:/bin` },
      security: { require_signature: 'privileged', key_file: path.join(REPO, 'package.json') },
      actions: {
        restart_service: {
          argv: ['systemctl', 'restart', '{unit}'],
          params: { unit: { type: 'string', pattern: '^[a-z.]{1,20}$' } },
          pattern: '^systemctl restart (?<unit>[a-z.]{1,20})$',
          sudo: true,
          timeout: '60s',
          limits: { memory: '64M' },
        },
        restart_dns: {
          argv: ['systemctl', 'restart', 'pihole-FTL'],
          stagger: { group: 'dns', interval: '30m' },
        },
      },
    });
  };

  it('a raw command: the action, the exact argv with sudo, timeout and prlimit, and the rules that apply', async () => {
    const r = await runCli(['explain', '--config', config(), 'systemctl restart nginx']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^action:\s+restart_service$/m);
    expect(r.stdout).toMatch(
      /^argv:\s+\[".*sudo","-n","--",".*timeout","--kill-after=5s","60s",".*prlimit","--as=67108864","--",".*systemctl","restart","nginx"\]$/m,
    );
    expect(r.stdout).toMatch(/^signature: required \(security.require_signature: privileged\)$/m);
    expect(r.stdout).toMatch(/would run: yes \(nothing was run\)/);
  });

  it('a JSON request: stagger shown; a bad one says precisely why, exit 1', async () => {
    const cfg = config();
    expect((await runCli(['explain', '--config', cfg, '{"action":"restart_dns"}'])).stdout).toMatch(
      /^stagger:\s+group dns, one run per 30m across the fleet$/m,
    );
    const bad = await runCli(['explain', '--config', cfg, 'systemctl restart nginx; reboot']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^refused: not_whitelisted$/m);
    const opt = await runCli([
      'explain',
      '--config',
      cfg,
      '{"action":"restart_service","params":{"unit":"x"},"colour":1}',
    ]);
    expect(opt.stdout).toMatch(/refused: invalid_request\n {2}"colour"|unknown field/);
    expect(calls(path.dirname(cfg))).toEqual([]); // nothing ran
  });
});
