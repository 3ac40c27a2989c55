/**
 * The mosquitto_pub / mosquitto_rr / homelab-cmd examples in the docs, run as
 * written against a real Mosquitto and an agent for host pihole-1 (its
 * pihole, systemctl and apt-get are stand-ins on a test PATH). Only the broker
 * address and credentials are rewritten to this test's private broker.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { BIN, REPO, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { MOSQUITTO, findBinary, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';

const PUB = findBinary('mosquitto_pub');
const RR = findBinary('mosquitto_rr');
const available = MOSQUITTO !== undefined && PUB !== undefined && RR !== undefined;
if (!available) reportMissing('mosquitto / mosquitto-clients', 'running the docs\' MQTT examples');

/** Shell commands in fenced sh/bash (or unlabelled) code blocks, `\` continuations joined, with their trailing comment. */
function examples(file: string): { cmd: string; comment: string }[] {
  const out: { cmd: string; comment: string }[] = [];
  let inShell: boolean | undefined; // undefined: outside a block
  let pending = '';
  for (const line of readFileSync(path.join(REPO, file), 'utf8').split('\n')) {
    const fence = /^\s*```(\w*)/.exec(line);
    if (fence) {
      inShell = inShell === undefined ? ['', 'sh', 'bash'].includes(fence[1] ?? '') : undefined;
      continue;
    }
    if (!inShell) continue;
    if (line.trimEnd().endsWith('\\')) {
      pending += `${line.trimEnd().slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line.trim()).trim();
    pending = '';
    const hash = full.search(/\s#\s/);
    out.push(hash === -1 ? { cmd: full, comment: '' } : { cmd: full.slice(0, hash).trim(), comment: full.slice(hash) });
  }
  return out;
}

/** Points an example at the test broker; everything else stays as documented. */
function localize(cmd: string, port: number): string {
  // The README's tour relies on `up` on the default port; here the broker is private, so say where it is.
  if (/^npx homelab-cmd/.test(cmd) && !cmd.includes('--url')) cmd = `${cmd} --url mqtt://127.0.0.1:${port}`;
  return cmd
    .replace(/ -h \S+/, '')
    .replace(/ -u \S+ -P \S+/, '')
    .replace(/--url mqtt:\/\/\S+/, `--url mqtt://127.0.0.1:${port}`)
    .replace(/^npx homelab-cmd/, `${process.execPath} ${BIN}`)
    .replace(/<host>/g, 'pihole-1')
    .replace(/^(mosquitto_pub|mosquitto_rr)/, `$1 -h 127.0.0.1 -p ${port}`);
}

describe.skipIf(!available)('the docs\' MQTT examples, run as written', () => {
  let m: MosquittoProcess;
  let agent: AgentProcess;
  let ctl: TestClient;
  beforeAll(async () => {
    m = await startMosquitto();
    const dir = tempDir();
    fakeBin(dir, 'pihole', 'echo "  [✓] DNS service is running"');
    fakeBin(dir, 'systemctl');
    fakeBin(dir, 'apt-get', 'echo "0 upgraded"');
    fakeBin(dir, 'sudo', 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
    const file = writeConfig(dir, {
      host: 'pihole-1',
      state_dir: `${dir}/state`,
      mqtt: { url: m.url },
      execution: { enabled: true, path: testPath(`${dir}/bin`) },
      actions: {
        restart_dns: { argv: ['pihole', 'restartdns'], button: true },
        restart_service: { argv: ['systemctl', 'restart', '{unit}'], params: { unit: { type: 'string', pattern: '^[a-zA-Z0-9_.@-]{1,64}$' } }, pattern: '^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$', sudo: true },
        apply_updates: { steps: [['apt-get', 'update'], ['apt-get', '-y', 'upgrade']], sudo: true },
        // The example config's demo actions, which the README's tour uses.
        uptime: { argv: ['uptime'], pattern: '^uptime$' },
        disk_usage: { argv: ['df', '-h', '/'], pattern: '^df -h /$' },
        echo: { argv: ['echo', '{message}'], params: { message: { type: 'string', pattern: '^[A-Za-z0-9 _.,:!?-]{1,100}$', default: 'hello' } }, pattern: '^echo (?<message>.{1,100})$' },
      },
    });
    ctl = await TestClient.connect(m.url);
    await ctl.sub('homelab/pihole-1/result', 'homelab/pihole-1/status');
    agent = spawnCli(['agent', '--config', file]);
    await ctl.wait((x) => x.topic === 'homelab/pihole-1/status' && x.text === 'online', 10_000, 'pihole-1 online');
  });
  afterAll(async () => {
    agent?.proc.kill('SIGTERM');
    await agent?.exited;
    await ctl?.end();
    await m?.stop();
  });

  const docs = ['docs/mqtt-api.md', 'README.md'];
  // Retained publishes (-r) are the docs' recipes for clearing a retained command: they need the agent stopped.
  const commands = docs.flatMap((f) => examples(f).filter((e) => /^(mosquitto_pub|mosquitto_rr) /.test(e.cmd) && !/ -r\b/.test(e.cmd)).map((e) => [f, e.cmd] as const));
  const sends = docs.flatMap((f) => examples(f).filter((e) => /^npx homelab-cmd (send|status)\b/.test(e.cmd)).map((e) => [f, e.cmd, /rejected/.test(e.comment)] as const));

  it('finds the examples (the extraction itself works)', () => {
    expect(commands.length).toBeGreaterThanOrEqual(6);
    expect(sends.length).toBeGreaterThanOrEqual(2);
  });

  it.each(commands)('%s: %s', async (_file, cmd) => {
    const before = ctl.messages.length;
    const r = spawnSync('sh', ['-c', localize(cmd, m.port)], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    if (cmd.startsWith('mosquitto_rr')) {
      expect(JSON.parse(r.stdout)).toMatchObject({ host: 'pihole-1', status: 'succeeded' });
      return;
    }
    // A publish is answered: a final result of pihole-1, succeeded.
    const res = await ctl.wait((x) => ctl.messages.indexOf(x) >= before && x.topic === 'homelab/pihole-1/result', 10_000, `a result for: ${cmd}`);
    expect(JSON.parse(res.text)).toMatchObject({ host: 'pihole-1', status: 'succeeded' });
  });

  it.each(sends)('%s: %s', (_file, cmd, refused) => {
    const r = spawnSync('sh', ['-c', localize(cmd, m.port)], { encoding: 'utf8', timeout: 20_000 });
    // The docs say which examples are refused on purpose (a comment "rejected": exit 1).
    expect(r.status, r.stderr).toBe(refused ? 1 : 0);
    expect(r.stdout).toMatch(refused ? /"status": "rejected"/ : /pihole-1/);
  });
});
