/** The CLI as users type it: real processes, real brokers, exit codes and the lines they print. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/agent.js';
import { BIN, REPO, tempDir, writeConfig } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';
import { MOSQUITTO, findBinary, reportMissing, startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/net.js';
import { withDeadline } from '../helpers/wait.js';

const VERBS = ['up', 'agent', 'broker', 'send', 'status', 'check-config', 'sudoers'];

describe('help and usage', () => {
  it.each(VERBS)('%s --help prints its usage and exits 0', async (verb) => {
    const r = await runCli([verb, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: homelab-cmd ${verb}`));
  });

  it('no command prints the overview and exits 2; --help exits 0', async () => {
    const none = await runCli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('check-config');
    expect((await runCli(['--help'])).code).toBe(0);
  });

  it('an unknown command or option is a usage error (exit 2) naming what is wrong', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    const o = await runCli(['status', '--colour']);
    expect(o.code).toBe(2);
    expect(o.stderr).toMatch(/Unknown option '--colour'/);
  });

  // npx starts npm, which reads its config and the lockfile: 1–2 s on a quiet machine, tens of seconds on a
  // busy one. A deadline, not a speed limit.
  it('`npx homelab-cmd --help` works in the repo', () => {
    const r = spawnSync('npx', ['--no-install', 'homelab-cmd', '--help'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('homelab-cmd');
  }, 240_000);
});

describe('check-config', () => {
  it('accepts the shipped example', async () => {
    const r = await runCli(['check-config', '--config', path.join(REPO, 'config/agent.example.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OK — host .*3 action\(s\): uptime, disk_usage, echo/);
  });

  it('prints every problem as `path: what — how to fix` and exits 1', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'mqtt:',
        '  keepalive: soon',
        '  colour: blue',
        'actions:',
        '  restart:',
        '    argv: [systemctl, restart, "{unit}"]',
        '    button: true',
        '    params:',
        '      unit: { type: string, pattern: "([a-z" }',
      ].join('\n'),
    );
    const r = await runCli(['check-config', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mqtt\.keepalive: "soon" is not a duration — write seconds/);
    expect(r.stderr).toMatch(/mqtt\.colour: unknown key — remove it/);
    expect(r.stderr).toMatch(/actions\.restart\.params\.unit\.pattern: does not compile as an RE2 pattern/);
    expect(r.stderr).toMatch(
      /actions\.restart\.button: a button press sends no params, and param "unit" has no default/,
    );
  });

  it('names line and column of a YAML syntax error', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, 'mqtt:\n  url: "mqtt://x\nactions: {}\n');
    const r = await runCli(['check-config', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\(yaml line \d+, column \d+\)/);
  });

  it('a missing file says so', async () => {
    const r = await runCli(['check-config', '--config', '/nonexistent/agent.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read it: no such file — check the path given to --config/);
  });
});

describe('sudoers', () => {
  it('prints NOPASSWD lines for exactly the sudo actions, "*" where a param sits', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, {
      host: 'h1',
      actions: {
        restart_service: {
          argv: ['systemctl', 'restart', '{unit}'],
          params: { unit: { type: 'string', pattern: '^[a-z.]{1,20}$' } },
          sudo: true,
          timeout: '60s',
        },
        apply_updates: {
          steps: [
            ['apt-get', 'update'],
            ['apt-get', '-y', 'upgrade'],
          ],
          sudo: true,
          timeout: '30m',
        },
        uptime: { argv: ['uptime'] },
      },
    });
    const r = await runCli(['sudoers', '--config', file, '--user', 'hc']);
    expect(r.code).toBe(0);
    const rules = r.stdout.split('\n').filter((l) => l.startsWith('hc '));
    expect(rules).toHaveLength(3);
    expect(rules[0]).toMatch(
      /^hc ALL=\(root\) NOPASSWD: \/\S*timeout --kill-after\\=5s 60s \/\S*systemctl restart \*$/,
    );
    expect(rules[2]).toMatch(/1800s \/\S*apt-get -y upgrade$/);
    expect(r.stdout).not.toMatch(/uptime$/m);
  });
});

describe('send', () => {
  const h = new Harness();
  beforeAll(async () => {
    await h.start();
    await h.agent('cli-send', {
      echo: {
        argv: ['echo', '{m}'],
        params: { m: { type: 'string', pattern: '^[a-z]{1,10}$', default: 'hi' } },
      },
      fails: { argv: ['false'] },
    });
  });
  afterAll(() => h.stop());

  it('prints the final result and exits 0 when succeeded', async () => {
    const r = await runCli(['send', 'cli-send', 'echo', '--param', 'm=yo', '--url', h.url]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      host: 'cli-send',
      action: 'echo',
      status: 'succeeded',
      stdout: 'yo\n',
    });
  });

  it('exits 1 when the result is not succeeded', async () => {
    const r = await runCli(['send', 'cli-send', 'fails', '--url', h.url]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      status: 'failed',
      error_code: 'exit_nonzero',
      exit_code: 1,
    });
    const rej = await runCli(['send', 'cli-send', 'echo', '--param', 'm=NOPE', '--url', h.url]);
    expect(rej.code).toBe(1);
    expect(JSON.parse(rej.stdout)).toMatchObject({ status: 'rejected', error_code: 'invalid_params' });
  });

  it('--id makes a retry safe: the same id returns the same result', async () => {
    const a = await runCli(['send', 'cli-send', 'echo', '--id', 'cli-once', '--url', h.url]);
    const b = await runCli(['send', 'cli-send', 'echo', '--id', 'cli-once', '--url', h.url]);
    expect(JSON.parse(b.stdout)).toEqual(JSON.parse(a.stdout));
  });

  it('exits 2 without sending to a host the broker does not know (send-knows.test.ts has the rest)', async () => {
    const r = await runCli(['send', 'nobody-home', 'echo', '--url', h.url, '--wait', '0.5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/host nobody-home is unknown to the broker at .*known hosts: .*cli-send/);
  });

  it('exits 2 on usage errors and on connection errors', async () => {
    expect((await runCli(['send', 'cli-send'])).code).toBe(2);
    expect((await runCli(['send', 'Bad Host', 'echo'])).code).toBe(2);
    expect((await runCli(['send', 'cli-send', 'echo', '--param', 'novalue', '--url', h.url])).code).toBe(2);
    const port = await freePort();
    const r = await runCli(['send', 'cli-send', 'echo', '--url', `mqtt://127.0.0.1:${port}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot connect to mqtt:\/\/127\.0\.0\.1:\d+ .*is the broker running\?/);
  });

  it('status lists the host online with its heartbeat and last result', async () => {
    const r = await runCli(['status', '--url', h.url]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HOST\s+STATUS\s+HEARTBEAT/);
    expect(r.stdout).toMatch(/^cli-send\s+online\s+\d+s ago/m);
    const j = await runCli(['status', '--url', h.url, '--json']);
    const rows = JSON.parse(j.stdout) as { host: string; status: string; heartbeat?: unknown }[];
    expect(rows.find((x) => x.host === 'cli-send')).toMatchObject({ status: 'online' });
  });
});

describe('up', () => {
  it('`npm start --port N` (npm keeps --port, up gets N alone) says to pass it after --, exit 2', async () => {
    const viaNpm = await runCli(['up', '1900'], { npm_lifecycle_event: 'start' });
    expect(viaNpm.code).toBe(2);
    expect(viaNpm.stderr).toContain(
      'npm kept --port for itself, so up got only "1900": pass options after --, as in npm start -- --port 1900',
    );
    // Typed by hand, it is the plain usage error.
    const typed = await runCli(['up', '1900'], { npm_lifecycle_event: '' });
    expect(typed.code).toBe(2);
    expect(typed.stderr).toContain("Unexpected argument '1900'");
  });

  it("starts the embedded broker and this host's agent; an MQTT 5 client sees it online; SIGTERM exits 0", async () => {
    const dir = tempDir();
    const port = await freePort();
    const file = writeConfig(dir, {
      host: 'up-embedded',
      state_dir: `${dir}/state`,
      execution: { enabled: true },
      actions: { uptime: { argv: ['uptime'] } },
    });
    // A runtime dir of its own: its up.json is no other test's business.
    const up = spawnCli(['up', '--config', file, '--port', String(port)], { XDG_RUNTIME_DIR: tempDir() });
    const c = await withDeadline(
      (async () => {
        for (;;) {
          if (up.output().includes('is online'))
            return TestClient.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5 });
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      10_000,
      'up to print that the host is online',
    );
    await c.sub('homelab/up-embedded/status');
    expect((await c.wait((m) => m.topic === 'homelab/up-embedded/status')).text).toBe('online');
    expect(up.output()).toContain(
      `host "up-embedded" is online at mqtt://127.0.0.1:${port} (embedded broker, MQTT 5 and 3.1.1)`,
    );
    expect(up.output()).toContain('npx homelab-cmd send up-embedded uptime');
    const r = await runCli(['send', 'up-embedded', 'uptime', '--url', `mqtt://127.0.0.1:${port}`]);
    expect(r.code).toBe(0);
    await c.end();
    up.proc.kill('SIGTERM');
    expect((await withDeadline(up.exited, 10_000, 'up to exit')).code).toBe(0);
  });

  it('an explicit --port that is in use is a clear error, exit 2', async () => {
    const h = new Harness();
    await h.start();
    // Its own state: another test's `up` may hold the default state_dir's broker state at the same time.
    const r = await runCli(['up', '--port', String(h.broker.port)], {
      XDG_STATE_HOME: tempDir('hc-xdg-'),
      XDG_RUNTIME_DIR: tempDir('hc-run-'),
    });
    await h.stop();
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `127.0.0.1:${h.broker.port} is taken (a Mosquitto?) — pass another --port, or none and up picks a free one`,
    );
  });

  const RR = findBinary('mosquitto_rr');
  if (!RR || !MOSQUITTO) reportMissing('mosquitto_rr', 'the mosquitto_rr round trip');
  it.skipIf(!RR || !MOSQUITTO)(
    'mosquitto_rr gets the final result through the MQTT 5 response topic (against Mosquitto)',
    async () => {
      const m = await startMosquitto();
      const dir = tempDir();
      const file = writeConfig(dir, {
        host: 'rr-host',
        state_dir: `${dir}/state`,
        mqtt: { url: m.url },
        execution: { enabled: true },
        actions: {
          echo: { argv: ['echo', '{m}'], params: { m: { type: 'string', pattern: '^[a-z]{1,10}$' } } },
        },
      });
      const watcher = await TestClient.connect(m.url);
      await watcher.sub('homelab/rr-host/status');
      const agent = spawnCli(['agent', '--config', file]);
      await watcher.wait((x) => x.text === 'online');
      const rr = spawnSync(
        RR!,
        [
          '-p',
          String(m.port),
          '-V',
          'mqttv5',
          '-t',
          'homelab/rr-host/cmd/echo',
          '-e',
          'homelab/rr-host/reply/rr-test',
          '-m',
          '{"params":{"m":"viarr"}}',
          '-W',
          '10',
        ],
        { encoding: 'utf8' },
      );
      expect(rr.status).toBe(0);
      expect(JSON.parse(rr.stdout)).toMatchObject({
        host: 'rr-host',
        action: 'echo',
        status: 'succeeded',
        stdout: 'viarr\n',
      });
      agent.proc.kill('SIGTERM');
      await agent.exited;
      await watcher.end();
      await m.stop();
    },
  );
});

it('the bin exists and is executable', () => {
  expect(spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' }).stdout.trim()).toMatch(
    /^\d+\.\d+\.\d+/,
  );
});
