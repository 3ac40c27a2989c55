/**
 * `homelab-cmd up` stays on this machine: it never joins (or sends credentials to) a broker it did not
 * start, the CLI finds its broker whatever port it got, and Ctrl-C leaves nothing behind.
 */
import { chmodSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { tempDir, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { MOSQUITTO, reportMissing, startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/net.js';
import { until, withDeadline } from '../helpers/wait.js';

/** A private runtime and state dir, as a user's login session has. */
function userEnv(): NodeJS.ProcessEnv {
  const run = tempDir('hc-run-');
  chmodSync(run, 0o700);
  return { XDG_RUNTIME_DIR: run, XDG_STATE_HOME: tempDir('hc-xdg-') };
}

function upConfig(host: string, extra: Record<string, unknown> = {}): string {
  const dir = tempDir();
  return writeConfig(dir, {
    host,
    state_dir: `${dir}/state`,
    execution: { enabled: true },
    actions: { uptime: { argv: ['uptime'] } },
    ...extra,
  });
}

async function online(up: AgentProcess): Promise<string> {
  await until(
    () => up.output().includes('is online') || up.proc.exitCode !== null,
    30_000,
    '`up` to say the host is online',
  );
  const m = / is online at (mqtt:\/\/\S+) /.exec(up.output());
  if (!m) throw new Error(`up did not come online:\n${up.output()}`);
  return m[1]!;
}

async function stop(up: AgentProcess, sig: NodeJS.Signals = 'SIGTERM') {
  if (up.proc.exitCode === null) up.proc.kill(sig);
  return withDeadline(up.exited, 20_000, '`up` to exit');
}

describe('up on a busy default port', () => {
  it('never connects to what holds the port (no byte reaches it), and listens on a free port instead', async () => {
    // A raw listener stands in for "1883": it records every connection and every byte sent to it.
    const received: Buffer[] = [];
    let connections = 0;
    const squatter = net.createServer((s) => {
      connections++;
      s.on('data', (c: Buffer) => received.push(c));
    });
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const port = (squatter.address() as net.AddressInfo).port;
    const file = upConfig('up-squat', {
      broker: { port },
      mqtt: { username: 'agent-up', password: 'the-secret-password' },
    });
    const up = spawnCli(['up', '--config', file], userEnv());
    try {
      const url = await online(up);
      expect(url).not.toBe(`mqtt://127.0.0.1:${port}`);
      const moved = up
        .output()
        .split('\n')
        .filter((l) => l.includes('is taken'));
      expect(moved).toEqual([
        `homelab-cmd: 127.0.0.1:${port} is taken (a Mosquitto?) — the embedded broker listens on ${url.replace('mqtt://', '')} instead; the tour's commands find it`,
      ]);
      expect(connections).toBe(0);
      expect(Buffer.concat(received).toString('latin1')).not.toContain('the-secret-password');
    } finally {
      await stop(up);
      squatter.close();
    }
  });

  if (!MOSQUITTO) reportMissing('mosquitto', '`up` beside a Mosquitto on its default port');
  it.skipIf(!MOSQUITTO)(
    'beside a Mosquitto on its default port: nothing is published there, before or after Ctrl-C',
    async () => {
      const m = await startMosquitto();
      const watcher = await TestClient.connect(m.url);
      await watcher.sub('#');
      const file = upConfig('up-beside', { broker: { port: m.port } });
      const up = spawnCli(['up', '--config', file], userEnv());
      try {
        const url = await online(up);
        expect(url).not.toBe(m.url);
        const c = await TestClient.connect(url);
        await c.sub('homelab/up-beside/status');
        await c.wait((x) => x.text === 'online', 10_000, 'the agent online on the embedded broker');
        await c.end();
        expect((await stop(up, 'SIGINT')).code).toBe(0);
        // A fresh subscriber gets every retained message at once; the watcher got every live one.
        const fresh = await TestClient.connect(m.url);
        await fresh.sub('#', '$SYS/broker/uptime');
        await fresh.wait((x) => x.topic.startsWith('$SYS/'), 15_000, "Mosquitto's $SYS uptime");
        expect(fresh.messages.filter((x) => !x.topic.startsWith('$SYS/'))).toEqual([]);
        expect(watcher.messages).toEqual([]);
        await fresh.end();
      } finally {
        await stop(up);
        await watcher.end();
        await m.stop();
      }
    },
  );

  it('an explicit --port that is taken is one line, exit 2', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    const r = await runCli(['up', '--config', upConfig('up-explicit'), '--port', String(port)], userEnv());
    holder.close();
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `homelab-cmd up: 127.0.0.1:${port} is taken (a Mosquitto?) — pass another --port, or none and up picks a free one`,
    ]);
  });
});

describe('up with a login its own broker refuses', () => {
  it('is one line naming its broker and what to check, exit 2', async () => {
    const file = upConfig('up-badlogin', {
      mqtt: { username: 'agent-x', password: 'wrong' },
      broker: {
        users: [{ username: 'agent-x', password: 'right-password', role: 'agent', host: 'up-badlogin' }],
      },
    });
    const r = await runCli(['up', '--config', file, '--port', '0'], userEnv());
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('homelab-cmd'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^homelab-cmd up: the agent could not log in to its own broker at mqtt:\/\/127\.0\.0\.1:\d+ .* check that mqtt\.username and mqtt\.password of .* match a user in broker\.users$/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('up dials the address its broker is bound to', () => {
  it.each([
    ['localhost', /^mqtt:\/\/(127\.0\.0\.1|\[::1\]):\d+$/],
    ['::', /^mqtt:\/\/\[::1\]:\d+$/],
  ])('broker.host %s: the agent connects to its loopback address, never to a name', async (host, url) => {
    const up = spawnCli(
      [
        'up',
        '--config',
        upConfig(`up-bind-${host === '::' ? 'any' : 'name'}`, { broker: { host } }),
        '--port',
        '0',
      ],
      userEnv(),
    );
    try {
      expect(await online(up)).toMatch(url);
    } finally {
      await stop(up);
    }
  });
});

describe('the CLI finds the running up', () => {
  it('send, status, explain and discovery with no flags reach up on a non-default port; Ctrl-C exits 0, quietly, and removes the file', async () => {
    const env = userEnv();
    const port = await freePort();
    const up = spawnCli(['up', '--config', upConfig('up-found'), '--port', String(port)], env);
    try {
      const url = await online(up);
      expect(url).toBe(`mqtt://127.0.0.1:${port}`);
      const runtime = path.join(env.XDG_RUNTIME_DIR!, 'homelab-cmd', 'up.json');
      expect(existsSync(runtime)).toBe(true);
      const sent = await runCli(['send', 'up-found', 'uptime', '--wait', '30'], env);
      expect(sent.code, sent.stderr).toBe(0);
      expect(JSON.parse(sent.stdout)).toMatchObject({ host: 'up-found', status: 'succeeded' });
      const st = await runCli(['status', '--json'], env);
      expect(st.code, st.stderr).toBe(0);
      expect(JSON.parse(st.stdout)).toEqual([
        expect.objectContaining({ host: 'up-found', status: 'online' }),
      ]);
      const ex = await runCli(['explain', '--action', 'uptime', ''], env);
      expect(ex.code, ex.stderr).toBe(0);
      expect(ex.stdout).toContain('would run: yes');
      const disc = await runCli(['discovery'], env);
      expect(disc.code, disc.stderr).toBe(0);
      expect(disc.stdout).toMatch(/^homeassistant\/\S+\/up-found\//m);
      // Another user's runtime dir (here: one the record is not in) finds nothing, and says what to do.
      const none = await runCli(['explain', 'uptime'], userEnv());
      expect(none.code).toBe(2);
      expect(none.stderr).toContain('--config is required (no homelab-cmd up of this user is running)');
      const before = up.output().length;
      const exit = await stop(up, 'SIGINT');
      expect(exit.code).toBe(0);
      const tail = up.output().slice(before);
      expect(tail).not.toMatch(/write after end|ERR_STREAM|Warning|"level":(40|50)/);
      expect(existsSync(runtime)).toBe(false);
    } finally {
      await stop(up);
    }
  });
});
