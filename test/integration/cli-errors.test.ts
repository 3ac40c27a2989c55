/**
 * What a person sees when the broker says no: a refused login, a refused subscription or publish, no
 * broker at all — one line naming the broker (password redacted) and what to check, exit 2, never a
 * stack trace. And `status --watch | head` ends quietly.
 */
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { Aedes } from 'aedes';
import { chmodSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { silentLogger } from '../../src/log.js';
import { runCli } from '../helpers/agent.js';
import { BIN, tempDir, writeConfig } from '../helpers/fixtures.js';
import { MOSQUITTO, reportMissing, startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/net.js';
import { withDeadline } from '../helpers/wait.js';

let broker: RunningBroker;
let url: string;

beforeAll(async () => {
  broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    users: [
      { username: 'ctl', password: 'ctl-password', role: 'controller' },
      { username: 'agent-a', password: 'agent-a-password', role: 'agent', host: 'a' },
    ],
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    log: silentLogger(),
  });
  url = `mqtt://127.0.0.1:${broker.port}`;
});

afterAll(async () => {
  await broker.close();
});

/** A config that logs in as `username` (a private runtime dir: no running `up` is found). */
function login(username: string, password: string, host = 'b'): string {
  return loginAt(url, username, password, host);
}

function loginAt(url: string, username: string, password: string, host = 'b'): string {
  const dir = tempDir();
  return writeConfig(dir, {
    host,
    state_dir: `${dir}/state`,
    mqtt: { url, username, password },
    actions: { uptime: { argv: ['uptime'], button: true } },
  });
}

const env = () => ({ XDG_RUNTIME_DIR: tempDir('hc-run-'), XDG_STATE_HOME: tempDir() });

/** Exactly one line on stderr, nothing that looks like a stack, exit 2. */
function oneLine(r: { code: number | null; stderr: string }): string {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at |unexpected error/);
  return lines[0]!;
}

describe('one line, exit 2', () => {
  it('a refused login (bad password) names the broker and says to check the credentials', async () => {
    const r = await runCli(['send', 'b', 'uptime', '--config', login('ctl', 'wrong')], env());
    const line = oneLine(r);
    expect(line).toContain(url);
    expect(line).toMatch(/refused the login: check mqtt\.username and mqtt\.password/);
    expect(line).not.toContain('wrong');
  });

  it('discovery --clear refused (PUBACK not authorized) is one line', async () => {
    // A controller may command any host and read everything, but not write discovery topics.
    const r = await runCli(['discovery', '--clear', '--config', login('ctl', 'ctl-password', 'b')], env());
    const line = oneLine(r);
    expect(line).toContain(
      `the broker at ${url} refused to let this login clear the discovery topics of host b`,
    );
    expect(line).toContain('Not authorized');
  });

  it('an unreachable broker names it, password redacted, and says what to check', async () => {
    const port = await freePort();
    const r = await runCli(['status', '--url', `mqtt://me:s3cret@127.0.0.1:${port}`], env());
    const line = oneLine(r);
    expect(line).toContain(`mqtt://***@127.0.0.1:${port}`);
    expect(line).not.toContain('s3cret');
    expect(line).toContain('is the broker running?');
  });

  // Every verb that talks to a broker, against the same refusals: a wrong password, and no broker.
  const verbs: [string, (cfg: string) => string[]][] = [
    ['send', (cfg) => ['send', 'b', 'uptime', '--config', cfg]],
    ['cancel', (cfg) => ['cancel', 'b', 'r1', '--config', cfg]],
    ['status', (cfg) => ['status', '--config', cfg]],
    ['status --watch', (cfg) => ['status', '--watch', '--config', cfg]],
    ['discovery --clear', (cfg) => ['discovery', '--clear', '--config', cfg]],
  ];
  it.each(verbs)(
    '%s: a wrong password is one line naming the broker and the keys to check',
    async (_, args) => {
      const line = oneLine(await runCli(args(login('ctl', 'not-the-password')), env()));
      expect(line).toContain(url);
      expect(line).toContain('Bad User Name or Password');
      expect(line).toContain('check mqtt.username and mqtt.password (or password_file) in --config');
    },
  );
  it.each(verbs)('%s: no broker at all is one line naming it and asking whether it runs', async (_, args) => {
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const line = oneLine(await runCli(args(loginAt(dead, 'ctl', 'ctl-password')), env()));
    expect(line).toContain(`cannot connect to ${dead}`);
    expect(line).toContain('is the broker running?');
  });

  if (!MOSQUITTO) reportMissing('mosquitto', 'a CONNACK "Not authorized" from Mosquitto');
  it.skipIf(!MOSQUITTO)(
    'a connection refused as not authorized (Mosquitto, no anonymous) is one line',
    async () => {
      const m = await startMosquitto('allow_anonymous false');
      try {
        const r = await runCli(['status', '--url', m.url], env());
        const line = oneLine(r);
        expect(line).toContain(m.url);
        expect(line).toContain('Not authorized');
        expect(line).toContain('the broker does not let this client connect: check mqtt.username');
      } finally {
        await m.stop();
      }
    },
  );

  it('a controller gets through (the same config shape works with the right login)', async () => {
    const r = await runCli(['status', '--json', '--config', login('ctl', 'ctl-password')], env());
    expect(r.code, r.stderr).toBe(0);
  });
});

// An account that may connect but not subscribe: on the embedded broker an agent account can connect
// only as its own agent (docs/security.md § Broker identities), so the SUBACK refusals are shown on a
// Mosquitto whose ACL grants this login nearly nothing.
if (!MOSQUITTO) reportMissing('mosquitto', 'a SUBACK "Not authorized" from a Mosquitto ACL');
describe.skipIf(!MOSQUITTO)('a login the ACL refuses to subscribe (Mosquitto)', () => {
  let m: Awaited<ReturnType<typeof startMosquitto>>;
  beforeAll(async () => {
    const dir = tempDir();
    execFileSync('mosquitto_passwd', ['-b', '-c', `${dir}/passwd`, 'limited', 'limited-password']);
    writeFileSync(`${dir}/acl`, 'user limited\ntopic read homelab/nothing\n');
    // Mosquitto started as root reads its files as the mosquitto user.
    chmodSync(dir, 0o755);
    for (const f of ['passwd', 'acl']) chmodSync(`${dir}/${f}`, 0o644);
    m = await startMosquitto(`allow_anonymous false\npassword_file ${dir}/passwd\nacl_file ${dir}/acl`);
  });
  afterAll(async () => {
    await m.stop();
  });

  it("send refused by the broker's ACL (SUBACK refused) names the broker and the role to check", async () => {
    const r = await runCli(
      // --force: this login cannot read b's status either, which alone would stop send (exit 2, tested below).
      [
        'send',
        'b',
        'uptime',
        '--force',
        '--wait',
        '60',
        '--config',
        loginAt(m.url, 'limited', 'limited-password'),
      ],
      env(),
    );
    const line = oneLine(r);
    expect(line).toContain(`the broker at ${m.url} refused to let this login send to b`);
    expect(line).toContain('a controller may command and read every host');
  });
  it('send without --force: a status this login may not read is "unknown", and the line says the ACL may hide it', async () => {
    const r = await runCli(
      ['send', 'b', 'uptime', '--config', loginAt(m.url, 'limited', 'limited-password')],
      env(),
    );
    const line = oneLine(r);
    expect(line).toContain(`host b is unknown to the broker at ${m.url}`);
    expect(line).toContain("or the broker's ACL hides it from this login");
  });
  // `status` meets the same refusal path, but Mosquitto grants a wildcard subscription and filters what
  // it delivers instead, so there is no SUBACK refusal to show with it.
});

describe('a broker that takes the connection and then never answers (src/cli/client.ts boundAnswers)', () => {
  it('send and status end with one line, exit 2, instead of waiting for ever', async () => {
    // A bare aedes that never answers a SUBSCRIBE: it accepted the connection, so nothing else tells.
    const aedes = await Aedes.createBroker({ authorizeSubscribe: () => undefined });
    const server = net.createServer((socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const mute = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      for (const args of [['send', 'b', 'uptime', '--force', '--wait', '3'], ['status']]) {
        const r = await withDeadline(runCli([...args, '--url', mute]), 30_000, `${args[0]} to end`);
        expect(oneLine(r)).toContain(
          `the broker at ${mute} accepted the connection but did not answer a SUBSCRIBE within 5 s`,
        );
      }
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('EPIPE', () => {
  it('`status --watch | head -1` exits 0 without a word on stderr', async () => {
    // Asynchronous: the broker lives in this process and must answer while the pipe runs.
    const sh = spawn(
      'bash',
      [
        '-c',
        `"${process.execPath}" "${BIN}" status --watch --interval 0.1 --config "$CFG" 2>"$ERR" | head -1; echo "exit=\${PIPESTATUS[0]}"; cat "$ERR"`,
      ],
      {
        env: { ...process.env, ...env(), CFG: login('ctl', 'ctl-password'), ERR: `${tempDir()}/err` },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    sh.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await withDeadline(new Promise((r) => sh.once('exit', r)), 60_000, 'the pipe to end');
    expect(out.split('\n').slice(1).join('\n').trim()).toBe('exit=0');
  });
});
