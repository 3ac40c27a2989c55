/**
 * examples/node-red/flow.json in a real Node-RED, against a real agent on the
 * embedded broker: the inject node is pressed through Node-RED's admin API (the
 * `curl` of docs/node-red.md), the agent receives the request with its
 * `transaction`, and the flow's switch routes each final result — succeeded to
 * the "succeeded" debug node, failed to "format alert" and the "alert" debug
 * node (seen over the editor's websocket, as the debug sidebar sees them).
 *
 * Node-RED is not a devDependency: it would add ~280 packages to every `npm ci`.
 * The test installs one pinned version, once, into a cache outside the repository
 * (os.tmpdir()/homelab-cmd-node-red-<version>), and skips loudly when that fails.
 * The flow is changed only where docs/node-red.md tells the reader to change it:
 * the broker node's port and the inject node's host.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandsRunBy } from '../helpers/doc-coverage.js';
import { REPO, calls, fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { freePort } from '../helpers/net.js';
import { until, withDeadline } from '../helpers/wait.js';

const ME = 'test/integration/node-red.test.ts';
// 4.1.x runs on Node 20 (5.x needs Node 22, the engines floor here is 20).
const NODE_RED_VERSION = '4.1.15';
const CACHE = path.join(os.tmpdir(), `homelab-cmd-node-red-${NODE_RED_VERSION}`);
const RED_JS = path.join(CACHE, 'node_modules/node-red/red.js');

/** Installs Node-RED into the cache unless it is there; returns why it could not, or undefined. */
async function ensureNodeRed(): Promise<string | undefined> {
  if (existsSync(RED_JS)) return undefined;
  // Install beside the cache, then rename: a concurrent run never sees a half-installed tree.
  const staging = tempDir('homelab-cmd-node-red-install-');
  const npm = spawn(
    'npm',
    [
      'install',
      '--prefix',
      staging,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      `node-red@${NODE_RED_VERSION}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  npm.stdout.on('data', (c: Buffer) => (log += c.toString()));
  npm.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const code = await withDeadline(
    new Promise<number | null>((resolve) => npm.once('close', resolve)),
    240_000,
    'npm install node-red',
  ).catch((err: Error) => {
    npm.kill('SIGKILL');
    return err.message;
  });
  if (code !== 0) {
    rmSync(staging, { recursive: true, force: true });
    return `npm install node-red@${NODE_RED_VERSION} failed (${code}): ${log.trim().split('\n').slice(-3).join(' | ')}`;
  }
  try {
    renameSync(staging, CACHE);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another run got there first
  }
  return existsSync(RED_JS) ? undefined : `node-red@${NODE_RED_VERSION} installed, but ${RED_JS} is missing`;
}

interface FlowNode {
  id: string;
  type: string;
  port?: string;
  broker?: string;
  props?: { p: string; v: string; vt: string }[];
}

/** The shipped flow with the broker node pointed at `port` and the inject node at `host`. */
function localFlow(port: number, host: string): FlowNode[] {
  const flow = JSON.parse(readFileSync(path.join(REPO, 'examples/node-red/flow.json'), 'utf8')) as FlowNode[];
  for (const n of flow) {
    if (n.type === 'mqtt-broker') Object.assign(n, { broker: '127.0.0.1', port: String(port) });
    if (n.type === 'inject') for (const p of n.props ?? []) if (p.p === 'host') p.v = host;
  }
  return flow;
}

interface DebugMessage {
  id: string;
  name?: string;
  msg: string;
}

let unavailable: string | undefined;
const h = new Harness();
let dir: string;
let red: ChildProcess | undefined;
let redLog = '';
let adminUrl = '';
const debug: DebugMessage[] = [];

beforeAll(async () => {
  unavailable = await ensureNodeRed();
  if (unavailable) {
    process.stderr.write(`\n*** SKIPPED: Node-RED against the agent — ${unavailable} ***\n\n`);
    return;
  }
  await h.start();
  dir = tempDir();
  // systemctl restarts fine until the test drops a "broken" marker: then it fails like a unit that will not start.
  fakeBin(
    dir,
    'systemctl',
    `if [ -e "${dir}/broken" ]; then echo "Job for $2.service failed" >&2; exit 1; fi`,
  );
  await h.agent(
    'pihole-1',
    {
      restart_service: {
        argv: ['systemctl', 'restart', '{unit}'],
        params: { unit: { type: 'string', pattern: '^[a-zA-Z0-9_.@-]{1,64}$' } },
      },
    },
    { binDir: `${dir}/bin` },
  );
  await h.ctl.sub('homelab/pihole-1/cmd/#');

  const userDir = path.join(dir, 'node-red');
  mkdirSync(userDir);
  writeFileSync(
    path.join(userDir, 'flows.json'),
    JSON.stringify(localFlow(h.broker.port, 'pihole-1'), null, 2),
  );
  const port = await freePort();
  adminUrl = `http://127.0.0.1:${port}`;
  // Loopback only, no telemetry or update checks, no credential encryption prompt.
  writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = ${JSON.stringify({ uiHost: '127.0.0.1', uiPort: port, flowFile: 'flows.json', credentialSecret: false, telemetry: { enabled: false, updateNotification: false }, diagnostics: { enabled: false, ui: false }, logging: { console: { level: 'info' } } })};\n`,
  );
  red = spawn(
    process.execPath,
    [RED_JS, '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')],
    { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  red.stdout?.on('data', (c: Buffer) => (redLog += c.toString()));
  red.stderr?.on('data', (c: Buffer) => (redLog += c.toString()));
  await until(
    () => /Started flows/.test(redLog) && /Connected to broker/.test(redLog),
    60_000,
    'Node-RED to start its flows and connect to the broker',
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${redLog}`);
  });

  // The debug sidebar's channel: Node-RED's own websocket client, from its own install.
  const WebSocket = createRequire(path.join(CACHE, 'node_modules/node-red/'))(
    'ws',
  ) as typeof import('ws').WebSocket;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/comms`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('message', (data: Buffer) => {
    const batch = JSON.parse(data.toString()) as
      { topic: string; data: DebugMessage }[] | { topic: string; data: DebugMessage };
    for (const m of Array.isArray(batch) ? batch : [batch]) if (m.topic === 'debug') debug.push(m.data);
  });
  ws.send(JSON.stringify({ subscribe: 'debug' }));
  afterAllClose.push(() => ws.close());
}, 300_000);

const afterAllClose: (() => void)[] = [];
afterAll(async () => {
  for (const f of afterAllClose) f();
  if (red && red.exitCode === null) {
    const gone = new Promise((resolve) => red!.once('exit', resolve));
    red.kill('SIGTERM');
    await withDeadline(gone, 15_000, 'Node-RED to exit').catch(() => red!.kill('SIGKILL'));
  }
  if (!unavailable) await h.stop();
});

/** Presses the inject node the way docs/node-red.md does from a shell (curl), with only the port changed. */
function press(): void {
  const curl = commandsRunBy(ME).find((c) => c.cmd.startsWith('curl '));
  if (!curl) throw new Error('docs/node-red.md has no curl example for the inject node');
  const r = spawnSync('sh', ['-c', curl.cmd.replace('http://127.0.0.1:1880', adminUrl)], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  expect(r.status, r.stderr).toBe(0);
}

describe('the Node-RED flow (examples/node-red/flow.json) against a real agent', () => {
  it('a press: the agent gets the request with the flow\'s transaction; succeeded goes to the "succeeded" debug node', async (ctx) => {
    if (unavailable) ctx.skip();
    const before = h.ctl.messages.length;
    press();
    const req = await h.ctl.wait(
      (m) => h.ctl.messages.indexOf(m) >= before && m.topic === 'homelab/pihole-1/cmd/restart_service',
      20_000,
      'the request from Node-RED',
    );
    const body = JSON.parse(req.text) as { id: string };
    expect(body).toEqual({
      id: expect.stringMatching(/^nodered-/),
      action: 'restart_service',
      params: { unit: 'pihole-FTL' },
      ts: expect.any(Number),
      ttl: 60,
      transaction: 'nodered',
    });
    // Node-RED's mqtt out node sent msg.messageExpiryInterval as MQTT 5 message expiry (what is left of it).
    const expiry = req.packet.properties?.messageExpiryInterval;
    expect(expiry !== undefined && expiry > 0 && expiry <= 60).toBe(true);
    expect(await h.finalFor('pihole-1', body.id, 20_000)).toMatchObject({
      status: 'succeeded',
      transaction: 'nodered',
    });
    await until(() => debug.some((d) => d.msg.includes(body.id)), 20_000, 'the result in the debug sidebar');
    const shown = debug.filter((d) => d.msg.includes(body.id));
    expect(shown.map((d) => d.id)).toEqual(['hc_debug_ok']);
    expect(JSON.parse(shown[0]!.msg)).toMatchObject({
      id: body.id,
      host: 'pihole-1',
      status: 'succeeded',
      transaction: 'nodered',
    });
    expect(calls(dir)).toEqual(['systemctl restart pihole-FTL']);
  });

  it('a failure is routed to "format alert": one line in the "alert" debug node (sidebar and console), not to "succeeded"', async (ctx) => {
    if (unavailable) ctx.skip();
    writeFileSync(path.join(dir, 'broken'), '');
    const before = h.ctl.messages.length;
    press();
    const req = await h.ctl.wait(
      (m) => h.ctl.messages.indexOf(m) >= before && m.topic === 'homelab/pihole-1/cmd/restart_service',
      20_000,
      'the second request',
    );
    const { id } = JSON.parse(req.text) as { id: string };
    expect(await h.finalFor('pihole-1', id, 20_000)).toMatchObject({
      status: 'failed',
      error_code: 'exit_nonzero',
    });
    await until(
      () => debug.some((d) => d.id === 'hc_debug_alert' && d.msg.includes('failed')),
      20_000,
      'the alert in the debug sidebar',
    );
    const alert = debug.filter((d) => d.id === 'hc_debug_alert');
    expect(alert).toHaveLength(1);
    expect(alert[0]!.msg).toMatch(
      /^pihole-1: restart_service failed \(exit_nonzero\) .+ \[transaction nodered\]$/,
    );
    // console: true on the alert node: the same line in Node-RED's log.
    await until(
      () => /\[debug:alert\][\s\S]*pihole-1: restart_service failed/.test(redLog),
      10_000,
      "the alert in Node-RED's log",
    );
    expect(debug.filter((d) => d.id === 'hc_debug_ok')).toHaveLength(1); // still only the first, succeeded press
  });
});
