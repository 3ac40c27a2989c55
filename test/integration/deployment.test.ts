/**
 * Issue 10 end to end: deployments with a health check and rollback, opt-in
 * retry, and confined `path` params — a real broker, a real agent, real child
 * processes (fake docker/check scripts on a test PATH), a real HTTP server.
 */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHealthCheck } from '../../src/exec/health.js';
import type { Result } from '../../src/core/result.js';
import { runCli } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, writeConfig } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/wait.js';

const h = new Harness();
let server: http.Server;
let healthy = true;
let url = '';

beforeAll(async () => {
  await h.start();
  // The service's health endpoint: 200 while `healthy`, else 503.
  server = http.createServer((_req, res) => {
    res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(healthy ? 'ok' : 'starting');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
});
afterAll(async () => {
  await h.stop();
  await new Promise((resolve) => server.close(resolve));
});

const tag = { type: 'string', pattern: '^[a-z0-9.]{1,20}$' };

describe('deployments', () => {
  const host = 'deploy-host';
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    // docker stands in for the real one; `docker restore bad` fails, like a rollback that cannot restore.
    fakeBin(
      dir,
      'docker',
      'echo "docker did $1 $2"; [ "$2" = bad ] && { echo "restore failed" >&2; exit 2; }; exit 0',
    );
    fakeBin(dir, 'check', 'echo "unhealthy"; exit 1');
    fakeBin(dir, 'broken', 'echo "boom" >&2; exit 4');
    const deploy = (extra: Record<string, unknown>) => ({
      steps: [
        ['docker', 'pull', '{tag}'],
        ['docker', 'up', '{tag}'],
      ],
      params: { tag, previous: { ...tag, default: '1.0' } },
      rollback: [['docker', 'restore', '{previous}']],
      timeout: '10s',
      ...extra,
    });
    await h.agent(
      host,
      {
        deploy_http: deploy({ health: { http: { url }, retries: 2, delay: '100ms', timeout: '2s' } }),
        deploy_argv: deploy({ health: { argv: ['check'], retries: 2, delay: '100ms', timeout: '2s' } }),
        deploy_step_fails: { argv: ['broken'], rollback: [['docker', 'restore', 'old']] },
        deploy_slow: { argv: ['sleep', '30'], timeout: '1s', rollback: [['docker', 'restore', 'old']] },
        health_only: { argv: ['docker', 'up', 'x'], health: { argv: ['check'], retries: 1 } },
      },
      { binDir: `${dir}/bin` },
    );
    await h.ctl.sub(`homelab/${host}/output/+`);
  });

  const lines = () => calls(dir);

  it('succeeds: every step listed, the HTTP check passed, no rollback', async () => {
    healthy = true;
    const before = lines().length;
    const r = await h.request(host, { action: 'deploy_http', params: { tag: '2.0' } });
    expect(r).toMatchObject({
      status: 'succeeded',
      exit_code: 0,
      stdout: 'docker did pull 2.0\ndocker did up 2.0\n',
    });
    expect(r.error_code).toBeUndefined();
    expect(r.steps?.map((s) => [s.argv, s.exit_code])).toEqual([
      [['docker', 'pull', '2.0'], 0],
      [['docker', 'up', '2.0'], 0],
    ]);
    expect(r.health).toMatchObject({
      passed: true,
      attempts: 1,
      exit_code: 0,
      http_status: 200,
      output: 'ok',
      tries: [{ attempt: 1, passed: true, http_status: 200 }],
    });
    expect(r.rollback).toBeUndefined();
    expect(lines().slice(before)).toEqual(['docker pull 2.0', 'docker up 2.0']);
  });

  it('an HTTP check that answers 503 fails after its retries, and the rollback restores the previous tag', async () => {
    healthy = false;
    const before = lines().length;
    const r = await h.request(host, { action: 'deploy_http', params: { tag: '2.1', previous: '2.0' } });
    healthy = true;
    expect(r).toMatchObject({ status: 'failed', error_code: 'rolled_back', exit_code: 0 });
    expect(r.error).toMatch(
      /the steps succeeded but the health check failed 2 time\(s\) \(last: HTTP 503\); the rollback ran and succeeded/,
    );
    expect(r.health).toMatchObject({
      passed: false,
      attempts: 2,
      http_status: 503,
      tries: [
        { attempt: 1, passed: false, http_status: 503 },
        { attempt: 2, passed: false, http_status: 503 },
      ],
    });
    expect(r.rollback).toMatchObject({
      status: 'succeeded',
      steps: [{ argv: ['docker', 'restore', '2.0'], exit_code: 0 }],
    });
    expect(lines().slice(before)).toEqual(['docker pull 2.1', 'docker up 2.1', 'docker restore 2.0']);
    expect(r.stdout).toBe('docker did pull 2.1\ndocker did up 2.1\ndocker did restore 2.0\n');
  });

  it('an argv check that keeps failing: failed / rolled_back, with all steps, every try and the rollback listed', async () => {
    const before = lines().length;
    const r = await h.request(host, {
      id: 'argv-rb',
      action: 'deploy_argv',
      params: { tag: '3.0', previous: '2.0' },
    });
    expect(r).toMatchObject({ status: 'failed', error_code: 'rolled_back' });
    expect(r.steps).toHaveLength(2);
    expect(r.health).toMatchObject({ passed: false, attempts: 2, exit_code: 1, output: 'unhealthy\n' });
    expect(r.health?.tries?.map((t) => [t.attempt, t.passed, t.exit_code])).toEqual([
      [1, false, 1],
      [2, false, 1],
    ]);
    expect(r.rollback?.status).toBe('succeeded');
    expect(lines().slice(before)).toEqual([
      'docker pull 3.0',
      'docker up 3.0',
      'check ',
      'check ',
      'docker restore 2.0',
    ]);
    // Health and rollback output streamed live too, before the final result.
    const live = h.ctl
      .on(`homelab/${host}/output/argv-rb`)
      .flatMap((m) => (JSON.parse(m.text) as { lines: string[] }).lines);
    expect(live).toEqual(
      expect.arrayContaining(['docker did up 3.0', 'unhealthy', 'docker did restore 2.0']),
    );
  });

  it('a rollback that fails itself: failed / rollback_failed, with what the rollback said', async () => {
    const r = await h.request(host, { action: 'deploy_argv', params: { tag: '3.1', previous: 'bad' } });
    expect(r).toMatchObject({ status: 'failed', error_code: 'rollback_failed' });
    expect(r.error).toMatch(
      /and the rollback failed too \(docker exited with code 2 — see stderr\) — the host may be half-deployed: check it by hand now/,
    );
    expect(r.rollback).toMatchObject({
      status: 'failed',
      steps: [{ argv: ['docker', 'restore', 'bad'], exit_code: 2 }],
    });
    expect(r.stderr).toBe('restore failed\n');
  });

  it('a failing step rolls back without a health check (even a single argv is listed as a step)', async () => {
    const r = await h.request(host, { action: 'deploy_step_fails' });
    expect(r).toMatchObject({
      status: 'failed',
      error_code: 'rolled_back',
      exit_code: 4,
      steps: [{ argv: ['broken'], exit_code: 4 }],
      rollback: { status: 'succeeded' },
    });
    expect(r.health).toBeUndefined();
    expect(r.error).toMatch(
      /^the deployment failed \(broken exited with code 4 — see stderr\); the rollback ran/,
    );
  });

  it('a deployment that times out still rolls back: timed_out / rolled_back', async () => {
    const r = await h.request(host, { action: 'deploy_slow' }, { ms: 20_000 });
    expect(r).toMatchObject({
      status: 'timed_out',
      error_code: 'rolled_back',
      exit_code: -1,
      rollback: { status: 'succeeded', steps: [{ argv: ['docker', 'restore', 'old'], exit_code: 0 }] },
    });
    expect(r.error).toMatch(/ran longer than its timeout of 1s/);
  });

  it('a sudo deployment: the rollback runs through sudo like its steps, the health check never does', async () => {
    const own = tempDir();
    // A sudo stand-in that logs how it was called, then runs the command (drops "-n --").
    fakeBin(own, 'sudo', 'shift 2; exec "$@"');
    fakeBin(own, 'docker', 'exit 0');
    fakeBin(own, 'check', 'exit 1');
    await h.agent(
      'deploy-sudo',
      {
        d: {
          argv: ['docker', 'up'],
          sudo: true,
          timeout: '10s',
          health: { argv: ['check'], retries: 1 },
          rollback: [['docker', 'restore']],
        },
      },
      { binDir: `${own}/bin` },
    );
    const r = await h.request('deploy-sudo', { action: 'd' });
    expect(r).toMatchObject({ status: 'failed', error_code: 'rolled_back' });
    const log = calls(own);
    expect(log.filter((l) => l.startsWith('sudo '))).toEqual([
      expect.stringMatching(/^sudo -n -- \S+\/timeout --kill-after=5s 10s \S+\/docker up$/),
      expect.stringMatching(/^sudo -n -- \S+\/timeout --kill-after=5s 10s \S+\/docker restore$/),
    ]);
    expect(log).toContain('check ');
  });

  it('a health check without a rollback: failed / exit_nonzero, and says no rollback is configured', async () => {
    const r = await h.request(host, { action: 'health_only' });
    expect(r).toMatchObject({
      status: 'failed',
      error_code: 'exit_nonzero',
      health: { passed: false, attempts: 1 },
    });
    expect(r.error).toMatch(/no rollback is configured/);
    expect(r.rollback).toBeUndefined();
  });
});

describe('a staggered deployment', () => {
  it('its health check gates the group: a rolled-back deployment holds the next member', async () => {
    const dir = tempDir();
    fakeBin(dir, 'docker', 'exit 0');
    fakeBin(dir, 'check', 'exit 1');
    const deploy = {
      argv: ['docker', 'up'],
      health: { argv: ['check'], retries: 1 },
      rollback: [['docker', 'restore']],
      stagger: { group: 'dg', interval: '1s', settle: '200ms' },
    };
    await h.agent('dg-a', { deploy }, { binDir: `${dir}/bin` });
    await h.agent('dg-b', { deploy }, { binDir: `${dir}/bin` });
    await h.ctl.sub('homelab/_fleet/stagger/dg/last/dg-a');
    const a = await h.request('dg-a', { action: 'deploy' });
    expect(a).toMatchObject({ status: 'failed', error_code: 'rolled_back', health: { passed: false } });
    await h.ctl.waitJson(
      'homelab/_fleet/stagger/dg/last/dg-a',
      (v) => v.host === 'dg-a' && v.released === false,
    );
    const held = h.ctl.wait(
      (m) => m.topic === 'homelab/dg-b/result/dg-2' && m.text.includes('"scheduled"'),
      10_000,
      'dg-b scheduled',
    );
    await h.ctl.pub('homelab/dg-b/cmd/deploy', JSON.stringify({ id: 'dg-2' }));
    expect((JSON.parse((await held).text) as Result).error).toMatch(
      /the group is held: the run of deploy on dg-a .* has not passed its health check/,
    );
    expect(calls(dir)).toEqual(['docker up', 'check ', 'docker restore']);
  });
});

describe('retry', () => {
  const host = 'retry-host';
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    // Fails on its first run, succeeds on the next: the count lives in a file.
    fakeBin(
      dir,
      'flaky',
      `n=$(cat "${dir}/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${dir}/count"; echo "run $n"; [ $n -ge 2 ]`,
    );
    await h.agent(
      host,
      {
        flaky: { argv: ['flaky'], idempotent: true, retry: { attempts: 3, backoff: '100ms' } },
        missing: {
          argv: ['no-such-binary-homelab-xyz'],
          idempotent: true,
          retry: { attempts: 3, backoff: '100ms' },
        },
        always: { argv: ['sh', '-c', 'exit 7'], idempotent: true, retry: { attempts: 2, backoff: '50ms' } },
      },
      { binDir: `${dir}/bin` },
    );
  });

  it("fails once, then succeeds: both attempts listed, the final fields are the last one's", async () => {
    const r = await h.request(host, { action: 'flaky' });
    expect(r).toMatchObject({ status: 'succeeded', exit_code: 0, stdout: 'run 2\n' });
    expect(r.error_code).toBeUndefined();
    expect(
      r.attempts?.map(({ attempt, status, exit_code, error_code }) => ({
        attempt,
        status,
        exit_code,
        error_code,
      })),
    ).toEqual([
      { attempt: 1, status: 'failed', exit_code: 1, error_code: 'exit_nonzero' },
      { attempt: 2, status: 'succeeded', exit_code: 0, error_code: undefined },
    ]);
    expect(readFileSync(`${dir}/count`, 'utf8').trim()).toBe('2');
    // The whole run's span: at least the backoff between the attempts.
    expect(r.duration_ms).toBeGreaterThanOrEqual(100);
  });

  it('gives up after the last attempt', async () => {
    const r = await h.request(host, { action: 'always' });
    expect(r).toMatchObject({ status: 'failed', exit_code: 7, error_code: 'exit_nonzero' });
    expect(r.attempts?.map((a) => a.status)).toEqual(['failed', 'failed']);
  });

  it('never retries what cannot pass next time (not_found)', async () => {
    const r = await h.request(host, { action: 'missing' });
    expect(r).toMatchObject({ status: 'failed', error_code: 'not_found', exit_code: 127 });
    expect(r.attempts).toHaveLength(1);
  });

  it('an agent that stops ends the retries: the result says so, with the attempts made', async () => {
    const own = tempDir();
    fakeBin(own, 'fails', 'exit 3');
    const { agent } = await h.agent(
      'retry-stop',
      { fails: { argv: ['fails'], idempotent: true, retry: { attempts: 3, backoff: '30s' } } },
      { binDir: `${own}/bin`, execution: { shutdown_grace: '100ms' } },
    );
    const done = h.request('retry-stop', { action: 'fails' });
    await until(() => calls(own).length === 1, 10_000, 'the first attempt');
    await h.stopAgent(agent);
    const r = await done;
    expect(r).toMatchObject({ status: 'failed', exit_code: 3, error_code: 'exit_nonzero' });
    expect(r.attempts).toHaveLength(1);
    expect(r.error).toMatch(/the agent stopped before attempt 2 of 3/);
    expect(calls(own)).toHaveLength(1);
  });

  it('check-config refuses retry without idempotent: true, saying how to fix it', async () => {
    const cfgDir = tempDir();
    const file = writeConfig(cfgDir, { actions: { flaky: { argv: ['flaky'], retry: { attempts: 3 } } } });
    const r = await runCli(['check-config', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /actions\.flaky\.retry: .*confirm with idempotent: true; otherwise remove retry/,
    );
  });
});

describe('path params', () => {
  const host = 'path-host';
  let base: string;
  let logs: string;
  beforeAll(async () => {
    base = tempDir();
    logs = path.join(base, 'logs');
    mkdirSync(logs);
    mkdirSync(path.join(base, 'logs-evil'));
    mkdirSync(path.join(base, 'etc'));
    writeFileSync(
      path.join(logs, 'app.log'),
      Array.from({ length: 300 }, (_, i) => `line ${i + 1}`).join('\n') + '\n',
    );
    writeFileSync(path.join(base, 'logs-evil', 'x.log'), 'evil\n');
    writeFileSync(path.join(base, 'etc', 'shadow'), 'root:secret\n');
    symlinkSync(path.join(base, 'etc', 'shadow'), path.join(logs, 'escape.log'));
    writeFileSync(path.join(logs, 'old.bak'), 'backup\n');
    await h.agent(host, {
      show_log: {
        argv: ['tail', '-n', '200', '{file}'],
        params: { file: { type: 'path', roots: [logs] } },
        pattern: '^tail (?<file>\\S+)$',
      },
      remove_backup: { argv: ['rm', '--', '{file}'], params: { file: { type: 'path', roots: [logs] } } },
    });
  });

  const show = (file: unknown) => h.request(host, { action: 'show_log', params: { file } });

  it('a file inside the root: runs with its resolved path', async () => {
    const r = await show(path.join(logs, 'app.log'));
    expect(r.status).toBe('succeeded');
    expect(r.stdout.split('\n')[0]).toBe('line 101');
    // Relative to the first root, and as a raw command.
    expect((await show('app.log')).status).toBe('succeeded');
    expect(
      (
        await h.request(
          host,
          { command: `tail ${path.join(logs, 'app.log')}` },
          { topic: `homelab/${host}/cmd` },
        )
      ).status,
    ).toBe('succeeded');
  });

  it.each<[string, () => unknown, RegExp]>([
    ['traversal', () => '../../etc/shadow', /may not contain "\.\."/],
    ['traversal from inside', () => `${logs}/../etc/shadow`, /may not contain "\.\."/],
    [
      'a symlink inside the root pointing outside',
      () => path.join(logs, 'escape.log'),
      /resolves to .*etc\/shadow, outside the allowed roots/,
    ],
    [
      'a sibling directory sharing the prefix',
      () => path.join(base, 'logs-evil', 'x.log'),
      /outside the allowed roots/,
    ],
    ['the root itself', () => logs, /outside the allowed roots/],
    ['a missing file', () => path.join(logs, 'nope.log'), /does not exist/],
    ['a number', () => 5, /must be a JSON string/],
  ])('rejects %s with invalid_params, naming the allowed root', async (_, value, message) => {
    const r = await show(value());
    expect(r).toMatchObject({ status: 'rejected', error_code: 'invalid_params' });
    expect(r.error).toMatch(message);
    if (typeof value() === 'string') expect(r.error).toContain(`allowed: paths inside ${logs}`);
  });

  it('a NUL byte (JSON "\\u0000") is rejected before the file system is asked', async () => {
    const id = 'nul-path';
    const done = h.finalFor(host, id);
    // Written by hand: the escape must reach the agent as JSON text.
    await h.ctl.pub(
      `homelab/${host}/cmd/show_log`,
      `{"id":"${id}","params":{"file":"${logs}/app.log\\u0000/../../etc/shadow"}}`,
    );
    const r: Result = await done;
    expect(r).toMatchObject({ status: 'rejected', error_code: 'invalid_params' });
    expect(r.error).toMatch(/control character.*allowed: paths inside /);
  });

  it('"remove an old backup" removes exactly the named file, and never one through a symlink', async () => {
    expect((await h.request(host, { action: 'remove_backup', params: { file: 'old.bak' } })).status).toBe(
      'succeeded',
    );
    expect(existsSync(path.join(logs, 'old.bak'))).toBe(false);
    expect(
      (await h.request(host, { action: 'remove_backup', params: { file: 'escape.log' } })).error_code,
    ).toBe('invalid_params');
    expect(existsSync(path.join(base, 'etc', 'shadow'))).toBe(true);
  });
});

describe('the http health runner', () => {
  const opts = { path: '/usr/bin:/bin', maxOutput: 1000 };

  it('no answer fails at the timeout; a refused connection and a redirect fail too, each saying why', async () => {
    const hang = http.createServer((req, res) => {
      // /moved answers a redirect, which is never followed; anything else never answers.
      if (req.url === '/moved') res.writeHead(301, { location: 'http://example.com/' }).end();
    });
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    const port = (hang.address() as AddressInfo).port;
    try {
      const slow = await runHealthCheck(
        { http: { url: `http://127.0.0.1:${port}/`, status: 200 }, timeout: 300, retries: 1, delay: 0 },
        opts,
      );
      expect(slow).toMatchObject({
        passed: false,
        attempts: 1,
        exit_code: -1,
        tries: [{ attempt: 1, passed: false }],
      });
      expect(slow.output).toMatch(/no answer within 300ms/);
      expect(slow.tries?.[0]?.duration_ms).toBeGreaterThanOrEqual(250);
      const moved = await runHealthCheck(
        { http: { url: `http://127.0.0.1:${port}/moved`, status: 200 }, timeout: 2000, retries: 1, delay: 0 },
        opts,
      );
      expect(moved).toMatchObject({ passed: false, http_status: 301 });
      const wanted = await runHealthCheck(
        { http: { url: `http://127.0.0.1:${port}/moved`, status: 301 }, timeout: 2000, retries: 1, delay: 0 },
        opts,
      );
      expect(wanted).toMatchObject({ passed: true, exit_code: 0, http_status: 301 });
    } finally {
      hang.closeAllConnections();
      await new Promise((resolve) => hang.close(resolve));
    }
    const refused = await runHealthCheck(
      { http: { url: `http://127.0.0.1:${port}/`, status: 200 }, timeout: 2000, retries: 2, delay: 10 },
      opts,
    );
    expect(refused).toMatchObject({ passed: false, attempts: 2 });
    expect(refused.output).toMatch(/ECONNREFUSED/);
  });
});
