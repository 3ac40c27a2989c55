/**
 * The published package as a user installs it (docs/install.md § 1; docs/performance.md § The published
 * package): `npm pack`, `npm install -g` of the tarball into a private prefix, then the installed
 * command — the bundle, since the package holds no dist/ — runs `--version`, a request through `up`'s
 * embedded broker, and a `broker` whose Receive Maximum flow control exists only in our patched aedes
 * (patches/aedes+2.0.0-beta.1.patch: npm applies no patch to a registry install, so only the bundle
 * carries it). The other integration tests run the same bundle built from the checkout (test/global-build.ts), or dist/.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, tempDir, writeConfig } from '../helpers/fixtures.js';
import { packedTarball } from '../helpers/pack.js';
import { freePort } from '../helpers/net.js';
import { RawClient } from '../helpers/raw-mqtt.js';
import { reaped } from '../helpers/reaper.js';
import { slack, until, withDeadline } from '../helpers/wait.js';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
// A line the patch adds to aedes (scripts/bundle.mjs refuses to bundle an unpatched aedes too).
const AEDES_PATCH_MARKER = 'in-flight queue full: message dropped';

/** The tarball and the install (about 6 MB): removed after the file. */
let packDir: string;
let prefix: string;
let installed: string;
let cli: string;
const open: { kill(): void }[] = [];

function bytesUnder(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((n, e) => n + bytesUnder(path.join(p, e)), 0);
}

/** The installed command as a child process, its output collected. */
function spawnInstalled(args: string[], env: NodeJS.ProcessEnv) {
  const proc = reaped(
    spawn(cli, args, { cwd: prefix, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  open.push(proc);
  return { proc, output: () => out, exited };
}

beforeAll(async () => {
  const dir = (packDir = tempDir('hc-packed-'));
  const tarball = await packedTarball();
  prefix = path.join(dir, 'prefix');
  // --offline: a package without dependencies needs nothing from a registry; nothing leaves this machine.
  await run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], {
    cwd: dir,
  });
  installed = path.join(prefix, 'lib', 'node_modules', 'homelab-cmd');
  cli = path.join(prefix, 'bin', 'homelab-cmd');
}, slack(200_000));

afterAll(() => {
  for (const p of open) p.kill();
  if (packDir) rmSync(packDir, { recursive: true, force: true });
});

describe('the packed package, installed with npm install -g', () => {
  it('is one package of at most 5 MB, without dist/ or node_modules, and says its version', async () => {
    expect(readdirSync(path.join(prefix, 'lib', 'node_modules'))).toEqual(['homelab-cmd']);
    expect(existsSync(path.join(installed, 'node_modules'))).toBe(false);
    expect(existsSync(path.join(installed, 'dist'))).toBe(false);
    expect(existsSync(path.join(installed, 'bundle', 'main.js'))).toBe(true);
    expect(bytesUnder(installed)).toBeLessThanOrEqual(5 * 1024 * 1024);
    const v = await run(cli, ['--version']);
    expect(v.stdout.trim()).toBe(pkg.version);
  });

  it('carries the patched aedes (patches/aedes+2.0.0-beta.1.patch) in its bundle', () => {
    const bundle = path.join(installed, 'bundle');
    const withMarker = readdirSync(bundle).filter(
      (f) => f.endsWith('.js') && readFileSync(path.join(bundle, f), 'utf8').includes(AEDES_PATCH_MARKER),
    );
    expect(withMarker).toHaveLength(1);
  });

  it('up: the agent runs a request through its embedded broker; `send` from the same install gets the result', async () => {
    const dir = tempDir('hc-packed-up-');
    // A private runtime dir, as a login session has: `send` finds `up` through it.
    const run_ = path.join(dir, 'run');
    mkdirSync(run_, { mode: 0o700 });
    chmodSync(run_, 0o700);
    const env = {
      XDG_RUNTIME_DIR: run_,
      XDG_STATE_HOME: path.join(dir, 'xdg'),
      HOMELAB_CMD_LOG_LEVEL: 'info',
    };
    const config = writeConfig(dir, {
      host: 'packed',
      state_dir: path.join(dir, 'state'),
      execution: { enabled: true },
      actions: { hello: { argv: ['echo', 'hello from the bundle'] } },
    });
    const port = await freePort();
    const up = spawnInstalled(['up', '--config', config, '--port', String(port)], env);
    await until(
      () => up.output().includes('is online') || up.proc.exitCode !== null,
      slack(30_000),
      '`up` from the installed package to say the host is online',
    );
    expect(up.output()).toContain(`host "packed" is online at mqtt://127.0.0.1:${port}`);
    const sent = await run(cli, ['send', 'packed', 'hello', '--wait', '30'], {
      env: { ...process.env, ...env },
    });
    expect(JSON.parse(sent.stdout)).toMatchObject({
      host: 'packed',
      status: 'succeeded',
      stdout: 'hello from the bundle\n',
    });
    up.proc.kill('SIGTERM');
    expect(await withDeadline(up.exited, slack(20_000), '`up` to exit on SIGTERM')).toBe(0);
  });

  it('broker: disk state through the bundled LevelDB binding, and Receive Maximum as only the patched aedes keeps it [MQTT-3.3.4-9]', async () => {
    const dir = tempDir('hc-packed-broker-');
    const config = writeConfig(dir, { state_dir: path.join(dir, 'state') });
    const port = await freePort();
    const broker = spawnInstalled(['broker', '--config', config, '--port', String(port)], {});
    await until(
      () => broker.output().includes('listening on') || broker.proc.exitCode !== null,
      slack(30_000),
      'the installed broker to listen',
    );
    expect(broker.output()).toContain(`embedded broker listening on 127.0.0.1:${port}`);
    // broker.persistence: disk is the default; LevelDB's lock file shows the binding loaded and opened it.
    expect(existsSync(path.join(dir, 'state', 'broker', 'LOCK'))).toBe(true);

    // The same exchange as test/integration/broker-mqtt5.test.ts § Receive Maximum.
    const topic = 'homelab/packed/cmd/receive-max';
    const { client: sub } = await RawClient.connect(port, {
      clientId: 'packed-sub',
      properties: { receiveMaximum: 2 },
    });
    const { client: witness } = await RawClient.connect(port, { clientId: 'packed-witness' });
    const { client: pub } = await RawClient.connect(port, { clientId: 'packed-pub' });
    try {
      await sub.subscribe([{ topic, qos: 1 }], 1);
      await witness.subscribe([{ topic, qos: 0 }], 1);
      for (let i = 1; i <= 4; i++) {
        pub.send({
          cmd: 'publish',
          topic,
          payload: `m${i}`,
          qos: 1,
          retain: false,
          dup: false,
          messageId: i,
        });
        await pub.next((p) => p.cmd === 'puback' && p.messageId === i, `PUBACK ${i}`);
      }
      await witness.next(
        (p) => p.cmd === 'publish' && p.payload.toString() === 'm4',
        'the witness to receive m4',
      );
      sub.send({ cmd: 'pingreq' });
      await sub.next((p) => p.cmd === 'pingresp', 'PINGRESP');
      // Unpatched aedes sends all four at once, whatever the client's Receive Maximum.
      expect(sub.publishes(topic).map((p) => p.payload.toString())).toEqual(['m1', 'm2']);
      for (const p of sub.publishes(topic)) sub.send({ cmd: 'puback', messageId: p.messageId! });
      await sub.next(() => sub.publishes(topic).length === 4, 'm3 and m4 once m1 and m2 are acknowledged');
      expect(sub.publishes(topic).map((p) => p.payload.toString())).toEqual(['m1', 'm2', 'm3', 'm4']);
    } finally {
      for (const c of [sub, witness, pub]) c.socket.destroy();
      broker.proc.kill('SIGTERM');
      await withDeadline(broker.exited, slack(20_000), 'the broker to exit on SIGTERM');
    }
  });
});
