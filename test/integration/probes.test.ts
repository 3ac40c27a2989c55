/**
 * Probes through a real agent and a real broker, each against a real local target: an HTTP server and a
 * TCP listener started here, a closed port, a fake systemctl (systemd cannot run here), a directory, this
 * very process, and ping of 127.0.0.1 when ping is installed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import type { ProbeState } from '../../src/core/probes.js';
import { calls, fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { findBinary } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort } from '../helpers/net.js';
import { withDeadline } from '../helpers/wait.js';

const h = new Harness();
let ha: TestClient;
let web: http.Server;
let webUrl = '';
let listener: net.Server;
let tcpPort = 0;
let closedPort = 0;
// /slow and /hang never answer. A request to /hang is recorded with the close of its connection.
const hangs: Promise<void>[] = [];
let hangArrived: () => void = () => undefined;

const listen = (server: net.Server): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );

beforeAll(async () => {
  await h.start();
  ha = await TestClient.connect(h.url);
  await ha.sub('homelab/+/probe/+', 'homeassistant/#');
  web = http.createServer((req, res) => {
    if (req.url === '/health') return res.end('{"status": "ok"}');
    if (req.url === '/text') return res.end('all good, but not what the probe wants');
    if (req.url === '/fail') {
      res.statusCode = 503;
      return res.end('down');
    }
    if (req.url === '/slow') return;
    if (req.url === '/hang') {
      hangs.push(new Promise((resolve) => req.socket.once('close', () => resolve())));
      return hangArrived();
    }
    res.statusCode = 404;
    res.end();
  });
  webUrl = `http://127.0.0.1:${await listen(web)}`;
  listener = net.createServer((s) => s.end());
  tcpPort = await listen(listener);
  closedPort = await freePort();
});

afterAll(async () => {
  await h.stop();
  await ha.end();
  web.closeAllConnections();
  await new Promise((r) => web.close(r));
  await new Promise((r) => listener.close(r));
});

const topic = (host: string, name: string) => `homelab/${host}/probe/${name}`;
const state = (host: string, name: string, pred: (s: ProbeState) => boolean = () => true, ms = 20_000) =>
  ha.waitJson<ProbeState>(topic(host, name), pred, ms);
const ownComm = readFileSync('/proc/self/comm', 'utf8').trim();
// The agents run in this process: a warning Node prints into the agent's log shows up here.
const warnings: string[] = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

describe('every kind against a real local target, with execution disabled', () => {
  const host = 'probe-1';
  const dir = tempDir();
  let stateDir = '';
  let bin = '';
  let agent: Agent;
  let probes: Record<string, unknown> = {};

  beforeAll(async () => {
    // Answers like systemd: the state word, exit 0 only when active.
    bin = fakeBin(
      dir,
      'systemctl',
      'case "$2" in nginx) echo active; exit 0;; *) echo inactive; exit 3;; esac',
    );
    probes = {
      web_ok: {
        type: 'http',
        url: `${webUrl}/health`,
        body: '"status":\\s*"ok"',
        interval: '1s',
        name: 'Web',
      },
      web_503: { type: 'http', url: `${webUrl}/fail` },
      web_503_listed: { type: 'http', url: `${webUrl}/fail`, status: [200, 503], method: 'HEAD' },
      web_body: { type: 'http', url: `${webUrl}/text`, body: 'status.*ok' },
      web_refused: { type: 'http', url: `http://127.0.0.1:${closedPort}/` },
      tcp_open: { type: 'tcp', host: '127.0.0.1', port: tcpPort },
      tcp_closed: { type: 'tcp', host: '127.0.0.1', port: closedPort },
      svc_up: { type: 'service', unit: 'nginx' },
      svc_down: { type: 'service', unit: 'apache2.service' },
      disk_tmp: { type: 'disk', path: dir },
      disk_missing: { type: 'disk', path: path.join(dir, 'nope') },
      proc_self: { type: 'process', process: ownComm },
      proc_none: { type: 'process', process: 'no-such-process-x' },
    };
    stateDir = `${dir}/state`;
    agent = (
      await h.agent(host, {}, { stateDir, binDir: bin, execution: { enabled: false }, extra: { probes } })
    ).agent;
  });

  it('thirteen probes checking at once: no "Possible EventTarget memory leak" warning in the log', async () => {
    await Promise.all(Object.keys(probes).map((name) => state(host, name)));
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });

  it('http: status, latency and a body match', async () => {
    const s = await state(host, 'web_ok');
    expect(Object.keys(s)).toEqual([
      'name',
      'type',
      'ok',
      'value',
      'unit',
      'duration_ms',
      'checked_at',
      'error',
      'status_code',
    ]);
    expect(s).toMatchObject({
      name: 'web_ok',
      type: 'http',
      ok: true,
      unit: 'ms',
      error: null,
      status_code: 200,
    });
    expect(s.value).toEqual(expect.any(Number));
    expect(Date.now() - Date.parse(s.checked_at)).toBeLessThan(60_000);
  });

  it('http: an unexpected status, a body that does not match, a refused connection', async () => {
    expect(await state(host, 'web_503')).toMatchObject({
      ok: false,
      status_code: 503,
      error: 'status 503, expected 2xx',
      value: expect.any(Number),
    });
    expect(await state(host, 'web_503_listed')).toMatchObject({ ok: true, status_code: 503 });
    expect(await state(host, 'web_body')).toMatchObject({
      ok: false,
      status_code: 200,
      error: expect.stringMatching(/^the body does not match "status\.\*ok"/),
    });
    expect(await state(host, 'web_refused')).toMatchObject({
      ok: false,
      value: null,
      status_code: null,
      error: `connection refused by 127.0.0.1:${closedPort} — nothing listens there`,
    });
  });

  it('tcp: connect time to a listener, refused on a closed port', async () => {
    expect(await state(host, 'tcp_open')).toMatchObject({
      ok: true,
      unit: 'ms',
      value: expect.any(Number),
      error: null,
    });
    expect(await state(host, 'tcp_closed')).toMatchObject({
      ok: false,
      value: null,
      error: expect.stringMatching(/connection refused/),
    });
  });

  it('service: systemctl is-active, as argv on execution.path', async () => {
    expect(await state(host, 'svc_up')).toMatchObject({ ok: true, value: 'active', unit: null, error: null });
    expect(await state(host, 'svc_down')).toMatchObject({
      ok: false,
      value: 'inactive',
      error: 'apache2.service is inactive',
    });
    expect(calls(dir)).toEqual(
      expect.arrayContaining(['systemctl is-active nginx', 'systemctl is-active apache2.service']),
    );
  });

  it('disk: the used share of the filesystem, as df computes it', async () => {
    const s = await state(host, 'disk_tmp');
    const fs = statfsSync(dir);
    const used = (fs.blocks - fs.bfree) * fs.bsize;
    const expected = (used / (used + fs.bavail * fs.bsize)) * 100;
    expect(s).toMatchObject({ ok: true, unit: '%', error: null, total_bytes: fs.blocks * fs.bsize });
    expect(Math.abs((s.value as number) - expected)).toBeLessThan(2);
    expect(await state(host, 'disk_missing')).toMatchObject({
      ok: false,
      value: null,
      error: `${path.join(dir, 'nope')} does not exist — create it or fix the probe's path`,
    });
  });

  it('process: this process is found by name; a missing one is not', async () => {
    expect(await state(host, 'proc_self')).toMatchObject({
      ok: true,
      value: expect.any(Number),
      error: null,
    });
    expect(((await state(host, 'proc_self')).value as number) >= 1).toBe(true);
    expect(await state(host, 'proc_none')).toMatchObject({
      ok: false,
      value: 0,
      error: 'no process named "no-such-process-x" is running',
    });
  });

  it('publishes retained, again every interval', async () => {
    const first = await state(host, 'web_ok');
    const later = await state(
      host,
      'web_ok',
      (s) => Date.parse(s.checked_at) > Date.parse(first.checked_at),
      10_000,
    );
    const gap = Date.parse(later.checked_at) - Date.parse(first.checked_at);
    expect(gap).toBeGreaterThanOrEqual(900);
    const late = await TestClient.connect(h.url);
    await late.sub(topic(host, '+'));
    const got = await late.wait((m) => m.topic === topic(host, 'proc_none'));
    expect(got.packet.retain).toBe(true);
    await late.end();
  });

  it('appears in Home Assistant: a binary_sensor per probe, a sensor for latency and disk use', async () => {
    const cfg = (t: string) => ha.waitJson<Record<string, unknown>>(`homeassistant/${t}/config`);
    expect(await cfg(`binary_sensor/${host}/probe_web_ok`)).toMatchObject({
      name: 'Web',
      unique_id: `homelab_cmd_${host}_probe_web_ok`,
      state_topic: topic(host, 'web_ok'),
      device_class: 'connectivity',
    });
    expect(await cfg(`sensor/${host}/probe_web_ok-latency`)).toMatchObject({
      name: 'Web latency',
      state_topic: topic(host, 'web_ok'),
      unit_of_measurement: 'ms',
    });
    expect(await cfg(`binary_sensor/${host}/probe_svc_up`)).toMatchObject({ device_class: 'running' });
    expect(await cfg(`binary_sensor/${host}/probe_disk_tmp`)).toMatchObject({ device_class: 'problem' });
    expect(await cfg(`sensor/${host}/probe_disk_tmp-used`)).toMatchObject({ unit_of_measurement: '%' });
    expect(await cfg(`binary_sensor/${host}/probe_proc_none`)).toMatchObject({ device_class: 'running' });
  });

  it('a probe removed from the config loses its discovery and its retained state', async () => {
    await h.stopAgent(agent);
    const before = ha.messages.length;
    const { web_503: _gone, ...kept } = probes;
    agent = (
      await h.agent(
        host,
        {},
        { stateDir, binDir: bin, execution: { enabled: false }, extra: { probes: kept } },
      )
    ).agent;
    const cleared = (t: string) =>
      ha.wait(
        (m) => ha.messages.indexOf(m) >= before && m.topic === t && m.text === '',
        15_000,
        `an empty payload on ${t}`,
      );
    await cleared(`homeassistant/binary_sensor/${host}/probe_web_503/config`);
    await cleared(`homeassistant/sensor/${host}/probe_web_503-latency/config`);
    await cleared(topic(host, 'web_503'));
    const late = await TestClient.connect(h.url);
    await late.sub(topic(host, '+'), `homeassistant/+/${host}/#`);
    // web_503_listed stays: only the removed probe's topics are gone.
    await late.wait((m) => m.topic === topic(host, 'web_503_listed'));
    await late.wait((m) => m.topic === `homeassistant/binary_sensor/${host}/probe_web_503_listed/config`);
    expect(late.messages.filter((m) => /web_503(?:[/-]|$)/.test(m.topic))).toEqual([]);
    await late.end();
  });
});

describe('timeouts and stopping', () => {
  const host = 'probe-2';
  const dir = tempDir();

  it('a check that outlives its timeout reads as a failure', async () => {
    await h.agent(
      host,
      {},
      {
        stateDir: `${dir}/state`,
        extra: {
          probes: { stuck: { type: 'http', url: `${webUrl}/slow`, timeout: '300ms', interval: '10s' } },
        },
      },
    );
    expect(await state(host, 'stuck')).toMatchObject({
      ok: false,
      value: null,
      error: "no answer within 300ms — raise the probe's timeout if the target is just slow",
    });
  });

  it('stop() cancels a check in flight at once, and publishes nothing for it', async () => {
    const arrived = new Promise<void>((resolve) => (hangArrived = resolve));
    const { agent } = await h.agent(
      'probe-3',
      {},
      {
        stateDir: `${dir}/state-3`,
        extra: {
          probes: { hanging: { type: 'http', url: `${webUrl}/hang`, timeout: '20s', interval: '30s' } },
        },
      },
    );
    await withDeadline(arrived, 10_000, "the probe's request");
    const t0 = Date.now();
    await withDeadline(h.stopAgent(agent), 5_000, 'the agent to stop');
    expect(Date.now() - t0).toBeLessThan(5_000);
    // The request's connection was closed by the agent, not left to its 20 s timeout.
    await withDeadline(hangs[0]!, 2_000, "the probe's connection to close");
    expect(ha.on(topic('probe-3', 'hanging'))).toEqual([]);
  });
});

describe('ping', () => {
  it('runs ping as argv (-c COUNT -w DEADLINE HOST) on execution.path and reads its summary', async () => {
    const dir = tempDir();
    // Output as iputils prints it; the real ping is tested below where it is installed.
    const bin = fakeBin(
      dir,
      'ping',
      `printf '%s\\n' '2 packets transmitted, 2 received, 0% packet loss, time 1001ms' 'rtt min/avg/max/mdev = 0.040/0.050/0.060/0.010 ms'`,
    );
    await h.agent(
      'probe-4',
      {},
      {
        stateDir: `${dir}/state`,
        binDir: bin,
        extra: { probes: { lo: { type: 'ping', host: '127.0.0.1', count: 2, timeout: '3s' } } },
      },
    );
    expect(await state('probe-4', 'lo')).toMatchObject({
      ok: true,
      value: 0.05,
      unit: 'ms',
      loss_percent: 0,
      error: null,
    });
    expect(calls(dir)).toContain('ping -c 2 -w 3 127.0.0.1');
  });

  // ping may exist and still be refused its socket (no CAP_NET_RAW, no ping_group_range): then it says so.
  const PING = findBinary('ping');
  const pings =
    PING !== undefined &&
    spawnSync(PING, ['-c', '1', '-w', '3', '127.0.0.1'], { stdio: 'ignore' }).status === 0;
  if (!pings)
    process.stderr.write(
      `\n*** SKIPPED: ping of 127.0.0.1 through the real ping — ${PING ? `${PING} cannot ping here` : 'the "ping" binary is not installed (CI installs iputils-ping)'} ***\n\n`,
    );

  it.skipIf(!pings)('pings 127.0.0.1 with the real ping', async () => {
    const dir = tempDir();
    await h.agent(
      'probe-5',
      {},
      { stateDir: `${dir}/state`, extra: { probes: { lo: { type: 'ping', host: '127.0.0.1', count: 1 } } } },
    );
    const s = await state('probe-5', 'lo');
    expect(s).toMatchObject({ ok: true, unit: 'ms', loss_percent: 0, error: null });
    expect(s.value).toEqual(expect.any(Number));
  });
});
