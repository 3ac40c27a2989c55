/**
 * The naive bridge the agent is measured against: for each host, one MQTT
 * connection (MQTT 5, TCP_NODELAY on) that subscribes to `naive/H/cmd/+`,
 * spawns the action's argv with node:child_process and publishes one result on
 * `naive/H/result/ID` (QoS 1). No whitelist beyond a fixed table, no journal, no
 * timeout, no process group, no retained state: the floor an agent cannot beat.
 *
 * With --journal FILE it is the floor of a bridge that runs a command at most once even across a power
 * loss: before each spawn it appends one line to FILE and fsyncs it on the thread pool, as the agent's
 * journal does (docs/mqtt-api.md: nothing runs before its record is on disk). Nothing else is added.
 *
 *   node bench/naive-bridge.mjs --url mqtt://127.0.0.1:PORT [--hosts N] [--host-prefix h] [--journal FILE]
 * Prints `ready` once every host is subscribed; SIGTERM disconnects and exits.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const NAIVE_ACTIONS = { noop: ['/bin/true'], sleep: ['sleep', '0.1'] };

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    hosts: { type: 'string', default: '1' },
    'host-prefix': { type: 'string', default: 'naive' },
    prefix: { type: 'string', default: 'naive' },
    journal: { type: 'string' },
  },
});
const journalFd = values.journal ? fs.openSync(values.journal, 'a', 0o600) : undefined;
/**
 * Runs `go` once a line for `id` is on disk (at once without --journal). As the agent's journal
 * (journal-file.ts): the line written at once, the fsync on the thread pool, and lines written while one
 * fsync runs share the next (group commit), so that a burst is not a queue of fsyncs the agent never makes.
 */
const waiting = [];
let syncing = false;
const syncNext = () => {
  if (syncing || waiting.length === 0) return;
  syncing = true;
  const covered = waiting.splice(0);
  fs.fsync(journalFd, (err) => {
    if (err) throw err;
    syncing = false;
    for (const go of covered) go();
    syncNext();
  });
};
const durably = (id, go) => {
  if (journalFd === undefined) return go();
  fs.writeSync(journalFd, `${JSON.stringify({ id, at: Date.now() })}\n`);
  waiting.push(go);
  syncNext();
};
const count = Number(values.hosts);
const prefix = values.prefix;
const hostName = (i) =>
  count === 1 ? values['host-prefix'] : `${values['host-prefix']}${String(i).padStart(4, '0')}`;

function bridge(host) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(values.url, {
      protocolVersion: 5,
      clientId: `naive-${host}-${process.pid}`,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 30_000,
      keepalive: 60,
      // As the agent's client: without MQTT.js's 65,536 pre-built packet-id buffers (7 MB of heap), so
      // the footprint's floor is what an MQTT.js client needs, not an optional cache.
      writeCache: false,
    });
    client.once('error', reject);
    client.on('connect', () => {
      client.stream.setNoDelay(true);
      client.subscribe(`${prefix}/${host}/cmd/+`, { qos: 1 }, (err) => (err ? reject(err) : resolve(client)));
    });
    client.on('message', (topic, payload) => {
      const action = topic.slice(topic.lastIndexOf('/') + 1);
      let id;
      try {
        id = JSON.parse(payload.toString()).id;
      } catch {
        // a plain press: make an id
      }
      id = typeof id === 'string' ? id : randomUUID();
      const argv = NAIVE_ACTIONS[action];
      const reply = (result) =>
        client.publish(`${prefix}/${host}/result/${id}`, JSON.stringify({ id, host, action, ...result }), {
          qos: 1,
        });
      if (!argv) return reply({ status: 'rejected', exit_code: -1 });
      durably(id, () => {
        const t0 = performance.now();
        const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c) => (stdout += c));
        child.stderr.on('data', (c) => (stderr += c));
        let answered = false;
        const answer = (result) => {
          if (answered) return;
          answered = true;
          reply(result);
        };
        child.once('error', (err) => answer({ status: 'failed', exit_code: 127, error: err.message }));
        child.once('close', (code) =>
          answer({
            status: code === 0 ? 'succeeded' : 'failed',
            exit_code: code ?? -1,
            stdout,
            stderr,
            duration_ms: Math.round(performance.now() - t0),
          }),
        );
      });
    });
  });
}

const clients = [];
// Connect in batches: a thousand CONNECTs at once is a connect storm, not what is measured.
for (let i = 0; i < count; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(count, i + 50); j++) batch.push(bridge(hostName(j)));
  clients.push(...(await Promise.all(batch)));
}
process.stdout.write('ready\n');

const stop = () => {
  Promise.all(clients.map((c) => c.endAsync(true))).finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
