/** TLS to a real Mosquitto: verification on by default, a private CA through ca_file, insecure only when asked. */
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
// Configs refuse YAML anchors and aliases, which stringify writes for an object used twice.
const stringify = (value: unknown): string => toYaml(value, { aliasDuplicateObjects: false });
import { Agent } from '../../src/agent/agent.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';
import {
  MOSQUITTO,
  findBinary,
  reportMissing,
  startMosquitto,
  type MosquittoProcess,
} from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';

const OPENSSL = findBinary('openssl');
if (!MOSQUITTO) reportMissing('mosquitto', 'TLS tests');
if (!OPENSSL) reportMissing('openssl', 'TLS tests (certificates are made for each run)');
const available = MOSQUITTO !== undefined && OPENSSL !== undefined;

/** A throwaway CA and a server certificate for 127.0.0.1. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => path.join(dir, n);
  const run = (...args: string[]) => {
    const r = spawnSync(OPENSSL!, args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '1',
    '-subj',
    '/CN=homelab-cmd test CA',
  );
  run(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  );
  run(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.crt'),
    '-days',
    '1',
    '-extfile',
    f('san.ext'),
  );
  // Mosquitto started as root drops to its own user: it must be able to read these throwaway files.
  chmodSync(dir, 0o755);
  for (const n of readdirSync(dir)) chmodSync(f(n), 0o644);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

describe.skipIf(!available)('TLS (mqtts://) against Mosquitto', () => {
  let m: MosquittoProcess;
  let certs: { ca: string; cert: string; key: string };
  const agents: Agent[] = [];
  beforeAll(async () => {
    certs = makeCerts(tempDir('hc-tls-'));
    m = await startMosquitto(`cafile ${certs.ca}\ncertfile ${certs.cert}\nkeyfile ${certs.key}\n`);
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await m.stop();
  });

  function agent(host: string, mqtt: Record<string, unknown>): Agent {
    const dir = tempDir();
    const cfg = parseConfig(
      stringify({ host, state_dir: `${dir}/state`, mqtt: { url: `mqtts://127.0.0.1:${m.port}`, ...mqtt } }),
      `${dir}/agent.yaml`,
    );
    const a = new Agent(cfg, silentLogger(), { backoff: { initialMs: 50, maxMs: 200 } });
    agents.push(a);
    a.start();
    return a;
  }

  it('connects when ca_file names the private CA, and is online', async () => {
    const a = agent('tls-ca', { ca_file: certs.ca });
    await a.waitConnected(10_000);
    const c = await TestClient.connect(`mqtts://127.0.0.1:${m.port}`, { ca: [readFileSync(certs.ca)] });
    await c.sub('homelab/tls-ca/status');
    expect((await c.wait((x) => x.topic === 'homelab/tls-ca/status')).text).toBe('online');
    await c.end();
  });

  it('refuses a certificate it cannot verify: no silent downgrade', async () => {
    const a = agent('tls-none', {});
    await expect(a.waitConnected(1500)).rejects.toThrow(/no connection/);
  });

  it('connects without verification only when insecure: true says so — and every heartbeat says it', async () => {
    const a = agent('tls-insecure', { insecure: true });
    await a.waitConnected(10_000);
    const c = await TestClient.connect(`mqtts://127.0.0.1:${m.port}`, { ca: [readFileSync(certs.ca)] });
    await c.sub('homelab/tls-insecure/heartbeat', 'homelab/tls-ca/heartbeat');
    expect(await c.waitJson('homelab/tls-insecure/heartbeat')).toMatchObject({ insecure: true });
    expect(await c.waitJson('homelab/tls-ca/heartbeat')).not.toHaveProperty('insecure');
    await c.end();
  });
});
