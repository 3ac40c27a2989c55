/**
 * N real agents in one process — Agent objects from dist/, each with its own
 * config, state_dir, MQTT connection and journal — for the fan-out figures.
 *
 *   node bench/fleet-proc.mjs --url mqtt://127.0.0.1:PORT --hosts N --dir DIR [--host-prefix h]
 *   node bench/fleet-proc.mjs --url URL_A,URL_B … --mark-log FILE     (the clustered fleet)
 *   --ready-ms MS: how long each batch may take to connect (default 60 s); the tests give it their own deadline.
 * Prints `ready` once every agent is connected and has said `online`; SIGTERM stops them all.
 * Several URLs: agent i gets them as its mqtt.url failover list rotated by i, so the fleet starts
 * split evenly across the brokers and each agent fails over to the others.
 * --mark-log adds an action `mark` (params tag, secs) whose command appends "<host> <tag>" to FILE,
 * then sleeps secs: one line per run, to count how often each request really ran.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
// Configs refuse YAML anchors and aliases, which stringify writes for an object used twice.
const stringify = (value) => toYaml(value, { aliasDuplicateObjects: false });
import { Agent } from '../dist/agent/agent.js';
import { parseConfig } from '../dist/config/load.js';
import { silentLogger } from '../dist/log.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    hosts: { type: 'string' },
    dir: { type: 'string' },
    'host-prefix': { type: 'string', default: 'fleet' },
    'mark-log': { type: 'string' },
    'ready-ms': { type: 'string', default: '60000' },
  },
});
const count = Number(values.hosts);
const log = silentLogger();
const urls = values.url.split(',');
const urlsFor = (i) => (urls.length === 1 ? urls[0] : urls.map((_, k) => urls[(i + k) % urls.length]));

const markScript = values['mark-log'] && path.join(values.dir, 'mark-run.sh');
if (markScript) {
  // Appends of one short line (O_APPEND, well under PIPE_BUF) from many children do not interleave.
  writeFileSync(markScript, `#!/bin/sh\necho "$1 $2" >> '${values['mark-log']}'\nexec sleep "$3"\n`);
  chmodSync(markScript, 0o755);
}
const actionsFor = (host) => ({
  noop: { argv: ['/bin/true'] },
  sleep: { argv: ['sleep', '0.1'] },
  ...(markScript && {
    mark: {
      argv: [markScript, host, '{tag}', '{secs}'],
      params: {
        tag: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' },
        secs: { type: 'integer', min: 0, max: 30, default: 0 },
      },
    },
  }),
});

const agents = [];
for (let i = 0; i < count; i += 50) {
  const batch = [];
  // Started in batches of 50, like the naive fleet: a connect storm is not what is measured.
  for (let j = i; j < Math.min(count, i + 50); j++) {
    const host = `${values['host-prefix']}${String(j).padStart(4, '0')}`;
    const config = parseConfig(
      stringify({
        host,
        state_dir: path.join(values.dir, host),
        mqtt: { url: urlsFor(j) },
        // Discovery would add ~10 retained messages per agent to the broker; the naive agents have none.
        discovery: { enabled: false },
        // `homelab-cmd send --group bench` reaches the whole fleet (docs/fleet.md); one retained record each.
        groups: ['bench'],
        execution: { enabled: true, concurrency: 16, queue: 1000 },
        actions: actionsFor(host),
      }),
      path.join(values.dir, `${host}.yaml`),
    );
    const agent = new Agent(config, log, { backoff: { initialMs: 200, maxMs: 2000 } });
    agent.start();
    agents.push(agent);
    batch.push(agent.waitConnected(Number(values['ready-ms'])).catch((err) => ({ host, err })));
  }
  const late = (await Promise.all(batch)).filter(Boolean);
  if (late.length > 0) {
    process.stderr.write(
      `${late.length} of ${count} agents did not connect within ${values['ready-ms']} ms: ` +
        `${late.map((l) => `${l.host} (${l.err.message})`).join(', ')}\n`,
    );
    process.exit(1);
  }
}
process.stdout.write('ready\n');

const stop = () => {
  Promise.allSettled(agents.map((a) => a.stop())).finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
