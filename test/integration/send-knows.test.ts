/**
 * `send` reads the host's retained status before it publishes (docs/mqtt-api.md § homelab-cmd send and
 * status): an unknown host is a "did you mean" and exit 2 with nothing sent, an offline one is said so,
 * and a request accepted but not finished within --wait (scheduled by a stagger group, or still
 * running) exits 3 saying how to fetch its result — never "the agent is online but did not answer".
 * One embedded broker, one real agent; the CLI runs as a child process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/agent.js';
import { tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';

const h = new Harness();
const env = () => ({ XDG_RUNTIME_DIR: tempDir('hc-run-'), XDG_STATE_HOME: tempDir() });

beforeAll(async () => {
  await h.start();
  await h.agent('knows-1', {
    echo: { argv: ['echo', 'hi'] },
    // A single-host stagger group: a second run within the interval is scheduled for an hour later.
    restart_dns: { argv: ['true'], stagger: { group: 'dns', interval: '1h', settle: '100ms' } },
    slow: { argv: ['sleep', '10'], timeout: '30s' },
  });
  await h.ctl.pub('homelab/ghost-1/status', 'offline', { retain: true });
  await h.ctl.pub(
    'homelab/ghost-1/heartbeat',
    JSON.stringify({
      ts: '2026-01-02T03:04:05.000Z',
      host: 'ghost-1',
      load: [0, 0, 0],
      memory: { used: 1, total: 2 },
      disk: { used: 1, total: 2 },
      running: 0,
    }),
    { retain: true },
  );
});
afterAll(() => h.stop());

describe('send reads the host first', () => {
  it('an unknown host: did you mean, the known hosts, exit 2, nothing sent', async () => {
    const before = h.ctl.messages.length;
    const r = await runCli(['send', 'knows-l', 'echo', '--url', h.url], env());
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      `host knows-l is unknown to the broker at ${h.url}: it holds no retained homelab/knows-l/status`,
    );
    expect(lines[0]).toContain('did you mean knows-1?');
    expect(lines[0]).toMatch(/known hosts: ghost-1, knows-1\b/);
    expect(lines[0]).toContain('pass --force to send anyway');
    expect(r.stdout).toBe('');
    // No result ever appeared for it: nothing was published to homelab/knows-l/cmd/…
    expect(h.ctl.messages.slice(before).filter((m) => m.topic.startsWith('homelab/knows-l/'))).toEqual([]);
  });

  it('--force sends to an unknown host anyway, and the wait ends saying it is unknown', async () => {
    const r = await runCli(
      ['send', 'nobody-home', 'echo', '--force', '--wait', '0.5', '--url', h.url],
      env(),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no final result .* within 0.5 s — host nobody-home is unknown to this broker/);
  });

  it('an offline host: since when, and that the request expires after its ttl', async () => {
    const r = await runCli(['send', 'ghost-1', 'echo', '--wait', '0.5', '--url', h.url], env());
    expect(r.code).toBe(1);
    const [first, second] = r.stderr.trimEnd().split('\n');
    expect(first).toMatch(
      /^homelab-cmd send: host ghost-1 is offline since about 2026-01-02T03:04:05\.000Z \(its last heartbeat, \d+ (days|h) ago\); sending anyway — the request is valid for 0\.5 s \(its ttl, = --wait\)/,
    );
    expect(second).toContain('host ghost-1 is offline; the request expires after its ttl (0.5 s, = --wait)');
    expect(r.stderr).not.toContain('waits in its session');
  });

  it('an online host: no word before the result', async () => {
    const r = await runCli(['send', 'knows-1', 'echo', '--url', h.url], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('accepted, not finished within --wait: exit 3', () => {
  it('a scheduled run says when it will run and how to fetch the result, at once', async () => {
    const first = await runCli(['send', 'knows-1', 'restart_dns', '--url', h.url], env());
    expect(first.code, first.stderr).toBe(0);
    const r = await runCli(
      ['send', 'knows-1', 'restart_dns', '--id', 'dns-later', '--wait', '600', '--url', h.url],
      env(),
    );
    expect(r.code, r.stderr).toBe(3);
    const out = JSON.parse(r.stdout) as { status: string; run_at: string };
    expect(out.status).toBe('scheduled');
    const last = r.stderr.trimEnd().split('\n').at(-1) ?? '';
    expect(last).toContain(`request dns-later is scheduled: knows-1 will run it at ${out.run_at}`);
    expect(last).toContain(
      'fetch its result later with: homelab-cmd send knows-1 restart_dns --id dns-later',
    );
    expect(r.stderr).not.toContain('did not answer');
    // It did not wait out --wait (600 s): the run is an hour away.
    expect(Date.parse(out.run_at)).toBeGreaterThan(Date.now() + 30 * 60_000);
  });

  it('a run longer than --wait says it is still running, not that the agent did not answer', async () => {
    const r = await runCli(
      ['send', 'knows-1', 'slow', '--id', 'slow-1', '--wait', '5', '--url', h.url],
      env(),
    );
    expect(r.code, r.stderr).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: 'slow-1', status: 'running' });
    expect(r.stderr).toContain('request slow-1 is still running on knows-1 after --wait (5 s)');
    expect(r.stderr).toContain('homelab-cmd send knows-1 slow --id slow-1');
    expect(r.stderr).not.toContain('did not answer');
    // It carried on: the final result comes later, as the line said.
    const ended =
      h.seen('knows-1', 'slow-1').find((x) => x.status !== 'running') ??
      (await h.finalFor('knows-1', 'slow-1', 30_000));
    expect(ended.status).toBe('succeeded');
  }, 60_000);
});
