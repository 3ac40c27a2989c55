/**
 * `send --group / --hosts` end to end (docs/fleet.md): three real agents on one embedded broker, each
 * declaring `groups: [dns]`, a fake `pihole` on the test PATH that logs each restart and fails on a
 * host whose flag file exists, and the built CLI as a child process (test/global-build.ts builds it).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Agent } from '../../src/agent/agent.js';
import { runCli } from '../helpers/agent.js';
import { fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';

const h = new Harness();
const dir = tempDir('hc-fleet-');
const log = path.join(dir, 'restarts.log');
const failFlag = (host: string) => path.join(dir, `fail-${host}`);
const bin = fakeBin(
  dir,
  'pihole',
  `echo "start $HC_HOST" >> "${log}"\nsleep 0.1\necho "end $HC_HOST" >> "${log}"\n[ -e "${dir}/fail-$HC_HOST" ] && exit 1\nexit 0`,
);
const HOSTS = ['dns-1', 'dns-2', 'dns-3'];
let spare: Agent;

const agentOf = (host: string, groups: string[]) =>
  h.agent(
    host,
    { restart_dns: { argv: ['pihole', 'restartdns'], env: { HC_HOST: host } } },
    { binDir: bin, extra: { groups } },
  );

/** Every restart start/end line the fake pihole wrote, in order. */
const restarts = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
const cmdsTo = (host: string) => h.ctl.messages.filter((m) => m.topic.startsWith(`homelab/${host}/cmd`));
/** The built CLI as a child process: real exit codes. */
const cli = (...args: string[]) => runCli([...args, '--url', h.url]);
/** The same CLI in this process (main() of src/): no node start-up per call, to keep the file cheap. */
async function inproc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((stdout += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
  try {
    const code = await main([...args, '--url', h.url]);
    return { code, stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

beforeAll(async () => {
  await h.start();
  await h.ctl.sub('homelab/+/cmd/#', 'homelab/_fleet/groups/+');
  for (const host of HOSTS) await agentOf(host, ['dns', 'pis']);
  // A fourth member that goes away: its record stays, its status says offline.
  spare = (await agentOf('dns-4', ['dns'])).agent;
  await h.stopAgent(spare);
}, 30_000);
afterAll(async () => {
  await h.stop();
});

describe('groups and --check', () => {
  it('--check lists the members with their state, names the offline one, sends nothing, exits 4', async () => {
    const before = h.ctl.messages.filter((m) => m.topic.includes('/cmd')).length;
    const r = await cli('send', '--group', 'dns', 'restart_dns', '--check');
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/group dns: 4 host\(s\), 3 online, 1 not online/);
    expect(r.stdout).toMatch(/dns-4\s+offline/);
    expect(r.stdout).toMatch(/not online: dns-4/);
    expect(h.ctl.messages.filter((m) => m.topic.includes('/cmd')).length).toBe(before);
    expect(restarts()).toEqual([]);
  });

  it('status --group lists the same members; an unknown group is a usage error naming the groups seen', async () => {
    const r = await inproc('status', '--group', 'dns', '--json');
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as { hosts: { host: string; status: string }[]; not_online: string[] };
    expect(v.hosts.map((m) => `${m.host} ${m.status}`)).toEqual([
      'dns-1 online',
      'dns-2 online',
      'dns-3 online',
      'dns-4 offline',
    ]);
    expect(v.not_online).toEqual(['dns-4']);
    const none = await inproc('status', '--group', 'nas');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no host declares group "nas".*groups seen: dns, pis/);
  });

  it('ignores a record whose payload host differs from its topic host, and survives garbage', async () => {
    await h.ctl.pub('homelab/_fleet/groups/evil', JSON.stringify({ host: 'dns-1', groups: ['pis'], ts: 1 }), {
      retain: true,
    });
    await h.ctl.pub('homelab/_fleet/groups/junk', Buffer.alloc(200_000, '{'), { retain: true });
    await h.ctl.pub('homelab/_fleet/groups/bad', JSON.stringify({ host: 'bad', groups: 'pis' }), {
      retain: true,
    });
    await h.ctl.pub('homelab/_fleet/groups/deep', `${'['.repeat(5000)}${']'.repeat(5000)}`, { retain: true });
    try {
      const r = await inproc('send', '--group', 'pis', 'restart_dns', '--check', '--json');
      expect(r.code).toBe(0);
      const v = JSON.parse(r.stdout) as { hosts: { host: string }[] };
      expect(v.hosts.map((m) => m.host)).toEqual(HOSTS);
      expect(r.stderr).toMatch(/groups\/evil: payload host dns-1 differs from the topic's host/);
      expect(r.stderr).toMatch(/groups\/junk: record of 200000 bytes/);
      expect(r.stderr).toMatch(/groups\/bad: groups is not a list/);
    } finally {
      for (const t of ['evil', 'junk', 'bad', 'deep'])
        await h.ctl.pub(`homelab/_fleet/groups/${t}`, '', { retain: true });
    }
  });
});

describe('send --group', () => {
  it('--serial restarts the online members one at a time and exits 4 for the offline one', async () => {
    const r = await cli('send', '--group', 'dns', 'restart_dns', '--serial', '--run-id', 'all-ok');
    expect(r.code).toBe(4);
    // One at a time: each restart ends before the next starts, in the group's order.
    expect(restarts()).toEqual(HOSTS.flatMap((host) => [`start ${host}`, `end ${host}`]));
    const lines = r.stdout.split('\n');
    expect(lines[1]).toMatch(/^dns-4\s+offline\s/); // not run comes before the successes
    expect(lines.filter((l) => /^dns-\d\s+succeeded\s/.test(l))).toHaveLength(3);
    expect(r.stdout).toMatch(/run all-ok: restart_dns on 4 host\(s\): 1 offline, 3 succeeded/);
    expect(cmdsTo('dns-4')).toHaveLength(0);
    const ids = HOSTS.map((host) => JSON.parse(cmdsTo(host).at(-1)!.text) as { id: string });
    expect(ids.map((x) => x.id)).toEqual(HOSTS.map((host) => `all-ok-${host}`));
  });

  it('--serial stops at the first failure: the rest are not started, exit 1; a retry runs nothing twice', async () => {
    rmSync(log, { force: true });
    writeFileSync(failFlag('dns-2'), '');
    try {
      const r = await cli(
        'send',
        '--hosts',
        'dns-1,dns-2,dns-3',
        'restart_dns',
        '--serial',
        '--run-id',
        'r2',
        '--json',
      );
      expect(r.code).toBe(1);
      const v = JSON.parse(r.stdout) as {
        run_id: string;
        exit_code: number;
        counts: Record<string, number>;
        hosts: { host: string; id: string; status: string; exit_code?: number; error_code?: string }[];
      };
      expect(v.run_id).toBe('r2');
      expect(v.exit_code).toBe(1);
      expect(v.hosts.map((x) => `${x.host} ${x.status}`)).toEqual([
        'dns-2 failed',
        'dns-3 not_started',
        'dns-1 succeeded',
      ]);
      expect(v.hosts[0]).toMatchObject({ id: 'r2-dns-2', exit_code: 1, error_code: 'exit_nonzero' });
      expect(v.counts).toEqual({ failed: 1, not_started: 1, succeeded: 1 });
      expect(restarts()).toEqual(['start dns-1', 'end dns-1', 'start dns-2', 'end dns-2']);
      expect(cmdsTo('dns-3').some((m) => m.text.includes('"r2-dns-3"'))).toBe(false);

      // The same run id again: the agents answer with the stored results; nothing runs a second time.
      const again = await inproc(
        'send',
        '--hosts',
        'dns-1,dns-2,dns-3',
        'restart_dns',
        '--serial',
        '--run-id',
        'r2',
      );
      expect(again.code).toBe(1);
      expect(again.stdout).toMatch(/^dns-2\s+failed\s+1\s/m);
      expect(restarts()).toHaveLength(4);
    } finally {
      rmSync(failFlag('dns-2'), { force: true });
    }
  });

  it('--parallel: a named host with no status is offline and never sent to, exit 4; all ok is exit 0', async () => {
    const r = await inproc(
      'send',
      '--hosts',
      'dns-1,ghost,dns-3',
      'restart_dns',
      '--parallel',
      '2',
      '--json',
    );
    expect(r.code).toBe(4);
    const v = JSON.parse(r.stdout) as { hosts: { host: string; status: string }[] };
    expect(v.hosts.map((x) => `${x.host} ${x.status}`)).toEqual([
      'ghost offline',
      'dns-1 succeeded',
      'dns-3 succeeded',
    ]);
    expect(cmdsTo('ghost')).toHaveLength(0);
    const ok = await inproc('send', '--group', 'pis', 'restart_dns');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/restart_dns on 3 host\(s\): 3 succeeded/);
  });

  it('usage errors exit 2', async () => {
    for (const args of [
      ['send', '--group', 'dns', '--hosts', 'dns-1', 'restart_dns'],
      ['send', '--group', 'dns', 'restart_dns', '--serial', '--parallel', '2'],
      ['send', '--group', 'dns', 'dns-1', 'restart_dns'],
      ['send', '--group', 'Bad Name', 'restart_dns'],
      ['send', '--hosts', 'dns-1,NOPE', 'restart_dns'],
      ['send', '--group', 'dns', 'restart_dns', '--run-id', 'x'.repeat(25)],
      ['send', 'dns-1', 'restart_dns', '--serial'],
    ]) {
      const r = await inproc(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/homelab-cmd send: /);
    }
  });
});

describe('the agent publishes its record', () => {
  it('{host, groups, ts} under its own host id; an empty retained payload when it is in no group', async () => {
    const rec = await h.ctl.waitJson<{ host: string; groups: string[]; ts: number }>(
      'homelab/_fleet/groups/dns-1',
    );
    expect(rec).toMatchObject({ host: 'dns-1', groups: ['dns', 'pis'] });
    expect(rec.ts).toBeGreaterThan(Date.now() - 600_000);
    await agentOf('lonely', []);
    const m = await h.ctl.wait(
      (x) => x.topic === 'homelab/_fleet/groups/lonely',
      10_000,
      'the record of lonely',
    );
    expect(m.text).toBe('');
  });
});
