/**
 * The security layers against a real agent: signed requests (CLI, openssl,
 * Node-RED function), the deny-list, the child's sandbox, resource limits
 * with a real memory hog and a real fork bomb, and the audit log.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import * as nodeVm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/core/result.js';
import { runCli } from '../helpers/agent.js';
import { REPO, calls, fakeBin, isDead, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { findBinary, reportMissing } from '../helpers/mosquitto.js';
import { until } from '../helpers/wait.js';

const h = new Harness();
const KEY = 'a3f1c0ffee5e1ec7ed0123456789abcdef';
let dir: string;
let keyFile: string;

beforeAll(async () => {
  await h.start();
  dir = tempDir();
  keyFile = path.join(dir, 'fleet.key');
  writeFileSync(keyFile, `${KEY}\n`);
  // A stand-in for sudo that runs what follows "--", so privileged actions run here as they would with a NOPASSWD rule.
  fakeBin(dir, 'sudo', 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
  fakeBin(dir, 'systemctl', 'echo "restarted $2"');
  await h.agent(
    'sec-signed',
    {
      restart_service: {
        argv: ['systemctl', 'restart', '{unit}'],
        params: { unit: { type: 'string', pattern: '^[a-z.]{1,20}$' } },
        sudo: true,
      },
      uptime: { argv: ['echo', 'up'] },
    },
    { binDir: `${dir}/bin`, extra: { security: { require_signature: 'privileged', key_file: keyFile } } },
  );
});
afterAll(() => h.stop());

describe('signed requests (security.require_signature: privileged)', () => {
  it('an unsigned request for a sudo action is bad_signature; a harmless one still runs unsigned', async () => {
    const r = await h.request('sec-signed', { action: 'restart_service', params: { unit: 'nginx' } });
    expect(r).toMatchObject({ status: 'rejected', error_code: 'bad_signature' });
    expect(r.error).toMatch(/needs a signed request/);
    expect((await h.request('sec-signed', { action: 'uptime' })).status).toBe('succeeded');
    expect(calls(dir).filter((c) => c.startsWith('systemctl'))).toEqual([]);
  });

  it('homelab-cmd send --key-file signs; the same request replayed is `replayed`', async () => {
    const r = await runCli([
      'send',
      'sec-signed',
      'restart_service',
      '--param',
      'unit=nginx',
      '--id',
      'signed-1',
      '--key-file',
      keyFile,
      '--url',
      h.url,
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'succeeded', stdout: 'restarted nginx\n' });
    // Capture what was sent and send it again, as an attacker on the broker would.
    const sent = h.ctl.messages.find((m) => m.topic === 'homelab/sec-signed/result/signed-1');
    expect(sent).toBeDefined();
    // `replayed` goes to the latest result (and a reply topic), never over signed-1's stored result.
    const latest = h.ctl.next(
      (m) => m.topic === 'homelab/sec-signed/result' && m.text.includes('"signed-1"'),
      10_000,
      'the replay answered on the latest-result topic',
    );
    await h.ctl.pub(
      'homelab/sec-signed/cmd/restart_service',
      JSON.stringify({ id: 'signed-1', params: { unit: 'nginx' }, ts: Date.now(), sig: 'f'.repeat(64) }),
    );
    const replay = JSON.parse((await latest).text) as Result;
    expect(replay).toMatchObject({ status: 'rejected', error_code: 'replayed' });
    expect(h.seen('sec-signed', 'signed-1').map((r) => r.status)).toEqual(['succeeded']);
    expect(calls(dir).filter((c) => c.startsWith('systemctl'))).toEqual(['systemctl restart nginx']);
  });

  it('a wrong key, a changed param, or a ts outside ±5 min is refused', async () => {
    const other = path.join(dir, 'other.key');
    writeFileSync(other, 'not-the-fleet-key-0123456789');
    const wrong = await runCli([
      'send',
      'sec-signed',
      'restart_service',
      '--param',
      'unit=nginx',
      '--key-file',
      other,
      '--url',
      h.url,
    ]);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ status: 'rejected', error_code: 'bad_signature' });
    // Sign for "nginx", send "sshd": the signature binds the params.
    const { sign } = await import('../../src/core/signing.js');
    const ts = Date.now();
    const sig = sign(KEY, {
      host: 'sec-signed',
      action: 'restart_service',
      id: 'tamper-1',
      ts,
      params: { unit: 'nginx' },
    });
    const tampered = await h.request('sec-signed', {
      id: 'tamper-1',
      action: 'restart_service',
      params: { unit: 'sshd' },
      ts,
      sig,
    });
    expect(tampered.error_code).toBe('bad_signature');
    const old = Date.now() - 6 * 60_000;
    const stale = await h.request('sec-signed', {
      id: 'stale-1',
      action: 'restart_service',
      params: { unit: 'nginx' },
      ts: old,
      sig: sign(KEY, {
        host: 'sec-signed',
        action: 'restart_service',
        id: 'stale-1',
        ts: old,
        params: { unit: 'nginx' },
      }),
    });
    expect(stale).toMatchObject({ status: 'rejected', error_code: 'expired' });
    expect(stale.error).toMatch(/±300 s/);
  });

  const OPENSSL = findBinary('openssl');
  if (!OPENSSL) reportMissing('openssl', 'signing from a shell with openssl');
  it.skipIf(!OPENSSL)(
    'the shell recipe (examples/sign-request.sh, openssl) signs requests the agent accepts',
    async () => {
      const out = spawnSync(
        'sh',
        [
          path.join(REPO, 'examples/sign-request.sh'),
          keyFile,
          'sec-signed',
          'restart_service',
          'shell-1',
          '{"unit":"cron"}',
        ],
        { env: { ...process.env, PRINT_ONLY: '1' }, encoding: 'utf8' },
      );
      expect(out.status).toBe(0);
      const payload = JSON.parse(out.stdout) as Record<string, unknown>;
      const done = h.finalFor('sec-signed', 'shell-1');
      await h.ctl.pub('homelab/sec-signed/cmd/restart_service', JSON.stringify(payload));
      expect(await done).toMatchObject({ status: 'succeeded', stdout: 'restarted cron\n' });
    },
  );

  it('the Node-RED function node (examples/node-red/sign-function.js) signs requests the agent accepts', async () => {
    const code = readFileSync(path.join(REPO, 'examples/node-red/sign-function.js'), 'utf8');
    const msg = {
      host: 'sec-signed',
      action: 'restart_service',
      params: { unit: 'ssh.service' },
      _msgid: 'nr-tx-1',
    };
    const env = { get: (k: string) => (k === 'HOMELAB_CMD_KEY' ? KEY : undefined) };
    // Run it the way Node-RED does: a function body with msg, env and the crypto module in scope.
    const out = nodeVm.runInNewContext(`(function(){${code}\n})()`, { msg, env, crypto }) as {
      topic: string;
      payload: { id: string };
    };
    expect(out.topic).toBe('homelab/sec-signed/cmd/restart_service');
    expect(out.payload).toMatchObject({ ttl: 60, transaction: 'nr-tx-1' });
    const done = h.finalFor('sec-signed', out.payload.id);
    await h.ctl.pub(out.topic, JSON.stringify(out.payload));
    expect(await done).toMatchObject({
      status: 'succeeded',
      stdout: 'restarted ssh.service\n',
      transaction: 'nr-tx-1',
    });
  });
});

describe('the deny-list', () => {
  it('a final argv that matches it is rejected / denied, whatever the whitelist allowed', async () => {
    const d = tempDir();
    const bin = fakeBin(d, 'rm');
    fakeBin(d, 'cat');
    await h.agent(
      'sec-deny',
      {
        clean: { argv: ['rm', '-rf', '{path}'], params: { path: { type: 'string', pattern: '^/[a-z/]*$' } } },
        show: { argv: ['cat', '{file}'], params: { file: { type: 'string', pattern: '^/etc/[a-z]+$' } } },
        custom: { argv: ['echo', 'reboot now'] },
      },
      { binDir: bin, extra: { security: { deny: ['\\breboot\\b'] } } },
    );
    expect(await h.request('sec-deny', { action: 'clean', params: { path: '/' } })).toMatchObject({
      status: 'rejected',
      error_code: 'denied',
    });
    expect((await h.request('sec-deny', { action: 'show', params: { file: '/etc/shadow' } })).error).toMatch(
      /deny-list \(reading the password hashes\)/,
    );
    expect((await h.request('sec-deny', { action: 'custom' })).error).toMatch(/security.deny pattern/);
    expect((await h.request('sec-deny', { action: 'clean', params: { path: '/tmp/cache' } })).status).toBe(
      'succeeded',
    );
    expect(calls(d)).toEqual(['rm -rf /tmp/cache']);
  });

  it('check-config warns about an action that can never run', async () => {
    const d = tempDir();
    const file = path.join(d, 'agent.yaml');
    writeFileSync(file, 'actions:\n  nuke:\n    argv: [mkfs.ext4, /dev/sda1]\n  ok:\n    argv: [uptime]\n');
    const r = await runCli(['check-config', '--config', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /warning: actions\.nuke: its command matches the deny-list \(making a filesystem\)/,
    );
    expect(r.stderr).not.toMatch(/actions\.ok/);
  });
});

describe('the sandbox of every child', () => {
  it("gets only PATH, LANG and the action env — never the agent's secrets — a private cwd, umask 077, no stdin", async () => {
    process.env.HOMELAB_TEST_SECRET = 'must-not-leak';
    await h.agent('sec-sandbox', {
      env: { argv: ['env'], env: { GREETING: 'hi' } },
      where: { argv: ['sh', '-c', 'pwd; umask; ls -A; cat - < /dev/stdin | wc -c'] },
    });
    delete process.env.HOMELAB_TEST_SECRET;
    const env = await h.request('sec-sandbox', { action: 'env' });
    expect(env.stdout.trim().split('\n').sort()).toEqual([
      'GREETING=hi',
      'LANG=C.UTF-8',
      'PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    ]);
    const where = await h.request('sec-sandbox', { action: 'where' });
    const [cwd, umask, ...rest] = where.stdout.trim().split('\n');
    expect(cwd).toMatch(/\/homelab-cmd-[^/]+$/);
    expect(umask).toBe('0077');
    expect(rest).toEqual(['0']); // empty private directory listing, and stdin at EOF
    // Removed afterwards, in the background (off the result's path).
    await until(
      () => !readdirSync(path.dirname(cwd!)).includes(path.basename(cwd!)),
      5000,
      'the private cwd to be removed',
    );
  });
});

describe('resource limits (prlimit)', () => {
  const PRLIMIT = findBinary('prlimit');
  const SETPRIV = findBinary('setpriv');
  if (!PRLIMIT) reportMissing('prlimit', 'resource limit tests');

  it.skipIf(!PRLIMIT)(
    'a memory hog is stopped by limits.memory; the same command without the limit succeeds',
    async () => {
      const hog = ['sh', '-c', 'v=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#v}'];
      await h.agent('sec-mem', {
        capped: { argv: hog, limits: { memory: '48M' }, timeout: '20s' },
        free: { argv: hog, timeout: '20s' },
      });
      const capped = await h.request('sec-mem', { action: 'capped' }, { ms: 30_000 });
      expect(capped.status).toBe('failed');
      expect(capped.stdout).not.toContain('100000000');
      const free = await h.request('sec-mem', { action: 'free' }, { ms: 30_000 });
      expect(free).toMatchObject({ status: 'succeeded', stdout: '100000000\n' });
    },
  );

  // RLIMIT_NPROC does not bind root, so the bomb runs as nobody (setpriv), as a whitelisted script would.
  it.skipIf(!PRLIMIT || !SETPRIV)(
    'a fork bomb is contained by limits.processes, and its leftovers die with its process group',
    async () => {
      const bomb = [
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        'bash',
        '-c',
        'b() { b | b & }; b; sleep 30',
      ];
      await h.agent('sec-bomb', { bomb: { argv: bomb, limits: { processes: 30 }, timeout: '3s' } });
      let peak = 0;
      const count = () =>
        readdirSync('/proc')
          .filter((p) => /^\d+$/.test(p))
          .filter((p) => {
            try {
              return /^Uid:\s+65534\b/m.test(readFileSync(`/proc/${p}/status`, 'utf8')) && !isDead(Number(p));
            } catch {
              return false;
            }
          }).length;
      const sampler = setInterval(() => (peak = Math.max(peak, count())), 50);
      const r: Result = await h.request('sec-bomb', { action: 'bomb' }, { ms: 20_000 });
      clearInterval(sampler);
      // The shell gives up when it cannot fork (failed), or the timeout kills it; either way the group is killed.
      expect(['failed', 'timed_out']).toContain(r.status);
      expect(peak).toBeLessThanOrEqual(31);
      expect(peak).toBeGreaterThan(1); // it did try
      const { until } = await import('../helpers/wait.js');
      await until(() => count() === 0, 10_000, 'every bomb process to be gone');
    },
  );
});

describe('the audit log', () => {
  it('has one line per request with who, what, the decision and the result', () => {
    const lines = readFileSync(`${h.stateDirOf('sec-signed')}/audit.jsonl`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThanOrEqual(5);
    expect(lines.find((l) => l.id === 'signed-1' && l.decision === 'accepted')).toMatchObject({
      action: 'restart_service',
      status: 'succeeded',
      exit_code: 0,
      topic: 'homelab/sec-signed/cmd/restart_service',
    });
    expect(lines.find((l) => l.error_code === 'replayed')).toMatchObject({
      decision: 'rejected',
      id: 'signed-1',
    });
    expect(lines.find((l) => l.error_code === 'bad_signature')).toBeDefined();
  });
});
