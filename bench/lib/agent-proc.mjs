/**
 * The agent under test as its own process: `node <bin> agent --config <tmp yaml>`, where bin is the
 * checkout's bin/homelab-cmd.js (dist/) unless the bench passes the installed package's (bundle/).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { stringify as toYaml } from 'yaml';
// Configs refuse YAML anchors and aliases, which stringify writes for an object used twice.
const stringify = (value) => toYaml(value, { aliasDuplicateObjects: false });
import { BIN, startChild } from './proc.mjs';

export const BENCH_ACTIONS = { noop: { argv: ['/bin/true'] }, sleep: { argv: ['sleep', '0.1'] } };

/**
 * Starts the agent as `homelab-cmd agent` runs in production: info-level logs (to a file),
 * discovery on, execution enabled with concurrency 16 and queue 1000.
 * nodeArgs go before the script (e.g. --cpu-prof).
 */
export function startAgentProcess({ url, dir, host, heartbeat = '30s', nodeArgs = [], bin = BIN }) {
  const config = path.join(dir, `${host}.yaml`);
  writeFileSync(
    config,
    stringify({
      host,
      state_dir: path.join(dir, `${host}-state`),
      mqtt: { url, prefix: 'homelab' },
      heartbeat: { interval: heartbeat },
      execution: { enabled: true, concurrency: 16, queue: 1000 },
      actions: BENCH_ACTIONS,
    }),
  );
  return startChild(process.execPath, [...nodeArgs, bin, 'agent', '--config', config], {
    logFile: path.join(dir, `${host}.log`),
  });
}
