#!/usr/bin/env node
// Soak: steady load against a real Mosquitto for N minutes, then a report of
// sent, answered, lost, duplicated, and the agent's RSS over time.
//   npm run soak -- --minutes 5 [--rate 20]
// Loopback only: it starts its own Mosquitto on a free port and its own agent.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    rate: { type: 'string', default: '20' },
    mosquitto: { type: 'string', default: '/usr/sbin/mosquitto' },
  },
});
const minutes = Number(values.minutes);
const rate = Number(values.rate);
if (!(minutes > 0 && minutes <= 120) || !(rate > 0 && rate <= 500)) {
  console.error('soak: --minutes must be in (0, 120] and --rate in (0, 500] requests per second');
  process.exit(2);
}
const repo = path.resolve(import.meta.dirname, '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'hc-soak-'));
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const waitPort = async (port) => {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      const s = net
        .connect(port, '127.0.0.1', () => {
          s.destroy();
          r(true);
        })
        .on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('mosquitto did not start');
};

const port = await freePort();
writeFileSync(
  path.join(dir, 'mosquitto.conf'),
  `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n`,
);
const broker = spawn(values.mosquitto, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
await waitPort(port);
const url = `mqtt://127.0.0.1:${port}`;
writeFileSync(
  path.join(dir, 'agent.yaml'),
  `host: soak\nstate_dir: ${dir}/state\nmqtt: { url: "${url}" }\nheartbeat: { interval: 10s }\nexecution: { enabled: true, concurrency: 4, queue: 256 }\nactions:\n  ok: { argv: ["true"] }\n`,
);
const agent = spawn(
  process.execPath,
  [path.join(repo, 'bin/homelab-cmd.js'), 'agent', '--config', path.join(dir, 'agent.yaml')],
  { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, HOMELAB_CMD_LOG_LEVEL: 'warn' } },
);
const rss = () => {
  try {
    return Math.round(
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))[1]) / 1024,
    );
  } catch {
    return -1;
  }
};

const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
client.stream.setNoDelay(true);
const finals = new Map();
const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted']);
client.on('message', (topic, payload) => {
  if (!payload.length || !topic.includes('/result/')) return;
  const r = JSON.parse(payload);
  if (FINAL.has(r.status)) finals.set(r.id, (finals.get(r.id) ?? 0) + 1);
});
await client.subscribeAsync('homelab/soak/result/+', { qos: 1 });
await client.subscribeAsync('homelab/soak/status', { qos: 1 });
await new Promise((resolve) =>
  client.on('message', (t, p) => {
    if (t === 'homelab/soak/status' && p.toString() === 'online') resolve();
  }),
);

const samples = [{ t: 0, rss: rss() }];
let sent = 0;
const started = Date.now();
const end = started + minutes * 60_000;
const sampler = setInterval(
  () => samples.push({ t: Math.round((Date.now() - started) / 1000), rss: rss() }),
  10_000,
);
while (Date.now() < end) {
  const due = started + (sent / rate) * 1000;
  if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  void client.publishAsync('homelab/soak/cmd/ok', JSON.stringify({ id: `soak-${sent}` }), { qos: 1 });
  sent++;
}
// Let the last answers arrive (bounded).
const drainUntil = Date.now() + 30_000;
while (finals.size < sent && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 100));
clearInterval(sampler);
samples.push({ t: Math.round((Date.now() - started) / 1000), rss: rss() });
const duplicated = [...finals.values()].filter((n) => n > 1).length;
const report = {
  minutes,
  rate,
  sent,
  answered: finals.size,
  lost: sent - finals.size,
  duplicated,
  rss_start_mb: samples[0].rss,
  rss_end_mb: samples.at(-1).rss,
  rss_max_mb: Math.max(...samples.map((s) => s.rss)),
  samples,
};
console.log(JSON.stringify(report, null, 2));
await client.endAsync();
agent.kill('SIGTERM');
await new Promise((r) => agent.once('exit', r));
broker.kill('SIGKILL');
process.exit(report.lost === 0 && duplicated === 0 ? 0 : 1);
