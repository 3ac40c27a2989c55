/**
 * CPU time per request before the spawn, with the agent's own pure functions:
 * parseDelivery (payload → request), resolveRequest (whitelist, params, argv),
 * and the two Journal.record calls the pipeline makes before it spawns (accepted,
 * then running with executed_at; each one write + fsync), plus the runner's
 * private working directory (mkdtemp). CPU from process.cpuUsage, wall from
 * performance.now — fsync waits on the disk, which is wall time, not CPU.
 *
 *   node bench/overhead.mjs --n 2000 --dir DIR      prints one JSON line
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
// Configs refuse YAML anchors and aliases, which stringify writes for an object used twice.
const stringify = (value) => toYaml(value, { aliasDuplicateObjects: false });
import { Journal } from '../dist/agent/journal.js';
import { parseConfig } from '../dist/config/load.js';
import { parseDelivery } from '../dist/core/request.js';
import { resolveRequest } from '../dist/core/resolve.js';
import { makeResult } from '../dist/core/result.js';
import { silentLogger } from '../dist/log.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '2000' }, dir: { type: 'string' } },
});
const N = Number(values.n);
const dir = values.dir ?? mkdtempSync(path.join(os.tmpdir(), 'hc-overhead-'));

const config = parseConfig(
  stringify({
    host: 'bench',
    state_dir: path.join(dir, 'state'),
    execution: { enabled: true },
    actions: {
      noop: { argv: ['/bin/true'] },
      restart_service: {
        argv: ['systemctl', 'restart', '{unit}'],
        params: { unit: { type: 'string', pattern: '^[a-zA-Z0-9_.@-]{1,64}$' } },
        pattern: '^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$',
      },
    },
  }),
  path.join(dir, 'agent.yaml'),
);
const journal = new Journal(config.state_dir, silentLogger());
journal.open();
const defaults = { sudo: config.execution.sudo, timeoutMs: config.execution.timeout };

// Two request shapes: a press-like request with an id, and one whose param is validated against a pattern.
const payloads = [
  (i) => ({ topicAction: 'noop', payload: Buffer.from(JSON.stringify({ id: `n-${i}` })), retained: false }),
  (i) => ({
    topicAction: 'restart_service',
    payload: Buffer.from(
      JSON.stringify({ id: `s-${i}`, params: { unit: 'pihole-FTL.service' }, transaction: 't1' }),
    ),
    retained: false,
  }),
];

function measure(fn, n) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / n, wallUs: (wall * 1000) / n };
}

const parse = (i) => parseDelivery(payloads[i % 2](i), Date.now(), randomUUID);
const requests = [];
for (let i = 0; i < N; i++) {
  const p = parse(i);
  if (!p.ok) throw new Error(`parse failed: ${p.rejection.error}`);
  requests.push(p.request);
}
const resolve = (i) => {
  const r = resolveRequest(requests[i], config.actions, defaults);
  if (!r.ok) throw new Error(`resolve failed: ${r.rejection.error}`);
};
let jn = 0;
const journalTwice = () => {
  const ref = { id: `j-${jn++}`, action: 'noop', transaction: undefined };
  journal.record(makeResult('bench', ref, { status: 'running' }));
  journal.record(makeResult('bench', ref, { status: 'running', executed_at: new Date().toISOString() }));
};
const cwdDir = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'homelab-cmd-'));
  rmSync(d, { recursive: true, force: true });
};

// Warm-up, then measure.
measure(parse, 500);
measure(resolve, Math.min(500, N));
measure(journalTwice, 50);
const result = {
  n: N,
  parse: measure(parse, N),
  resolve: measure(resolve, N),
  journal2: measure(journalTwice, N),
  mkdtemp: measure(cwdDir, N),
};
result.total = {
  cpuUs: result.parse.cpuUs + result.resolve.cpuUs + result.journal2.cpuUs,
  wallUs: result.parse.wallUs + result.resolve.wallUs + result.journal2.wallUs,
};
if (!values.dir) rmSync(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify(result)}\n`);
