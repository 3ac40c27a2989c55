#!/usr/bin/env node
// The image's HEALTHCHECK: exit 0 when this host's retained `P/H/status` on the broker is `online`.
//
// What that proves: the broker is reachable with the agent's own credentials (an agent user may
// read `P/+/status`), and the agent's MQTT session is alive — an agent that died or hangs stops
// answering keepalives, and the broker publishes its last will, `offline`, after about
// 1.5 x mqtt.keepalive. What it does not prove: that actions work (only a run shows that).
// Usage: node docker/healthcheck.js [CONFIG]   (default /etc/homelab-cmd/agent.yaml)
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import mqtt from 'mqtt';
import { loadConfig } from '../dist/config/load.js';

const WAIT_MS = 5000;

let config;
try {
  config = loadConfig(process.argv[2] ?? '/etc/homelab-cmd/agent.yaml');
} catch (err) {
  process.stdout.write(`unhealthy: ${err.message}\n`);
  process.exit(1);
}
const m = config.mqtt;
const topic = `${m.prefix}/${config.host}/status`;

// MQTT 3.1.1: every broker speaks it, and a retained message is all this needs.
const options = {
  protocolVersion: 4,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: WAIT_MS,
  clientId: `homelab-cmd-health-${config.host}-${process.pid}`,
  rejectUnauthorized: m.insecure !== true,
  // As the agent's and the CLI's clients: not MQTT.js's 65,536 pre-built packet-id buffers (7 MB and
  // 45 ms at every health check; docs/performance.md § MQTT.js's number cache, and transports loaded on use).
  writeCache: false,
};
if (m.username !== undefined) options.username = m.username;
if (m.password !== undefined) options.password = m.password;
if (m.ca_file) options.ca = readFileSync(m.ca_file);
if (m.cert_file) options.cert = readFileSync(m.cert_file);
if (m.key_file) options.key = readFileSync(m.key_file);

const client = mqtt.connect(m.url, options);
const timer = setTimeout(() => finish(1, `no retained status on ${topic} within ${WAIT_MS / 1000} s — is the agent running with this config?`), WAIT_MS);

function finish(code, message) {
  clearTimeout(timer);
  process.stdout.write(`${code === 0 ? 'healthy' : 'unhealthy'}: ${message}\n`);
  client.end(true);
  process.exit(code);
}

client.on('connect', () => {
  client.subscribe(topic, { qos: 0 }, (err) => {
    if (err) finish(1, `the broker refused a subscription to ${topic}: ${err.message}`);
  });
});
client.on('message', (t, payload) => {
  if (t !== topic) return;
  const status = payload.toString();
  finish(status === 'online' ? 0 : 1, `${topic} is ${status === '' ? '(empty)' : status}`);
});
client.on('error', (err) => finish(1, `cannot connect to the broker: ${err.message}`));
