/**
 * `homelab-cmd acl` against a real Mosquitto (issue 7, item 8): the generated acl_file and the
 * generated mosquitto_passwd script are loaded into a broker with allow_anonymous false, and every
 * right and every refusal of docs/mqtt-api.md § Broker roles is checked with real MQTT.js clients.
 *
 * Mosquitto drops a refused publish (on MQTT 5 the PUBACK may say 0x87) and filters a refused
 * delivery without telling the subscriber. So a refusal is proven by order: the refused message
 * is sent first, then a marker that is allowed, from the same client; once the marker arrives, a
 * delivered refused message would have arrived before it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoAcl, mosquittoPasswd } from '../../src/cli/acl.js';
import { parseConfig } from '../../src/config/load.js';
import { MOSQUITTO, findBinary, reportMissing } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort, waitForPort } from '../helpers/net.js';

const PASSWD = findBinary('mosquitto_passwd');
if (!MOSQUITTO) reportMissing('mosquitto', 'Mosquitto ACL tests');
if (!PASSWD) reportMissing('mosquitto_passwd', 'Mosquitto ACL tests (the password file is made with it)');
const available = MOSQUITTO !== undefined && PASSWD !== undefined;

const PW = { a: 'pw-agent-a', b: "pw-agent-'b'", ctl: 'pw controller $HOME' };

interface Broker {
  url: string;
  log: () => string;
  stop: () => Promise<void>;
}

/**
 * Like helpers/mosquitto.ts startMosquitto, but with allow_anonymous false (that helper always
 * allows anonymous clients). Mosquitto started as root drops to the user "mosquitto": every file
 * it reads must be world-readable.
 */
async function startSecuredMosquitto(dir: string, files: { passwd: string; acl: string }): Promise<Broker> {
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `password_file ${files.passwd}`,
      `acl_file ${files.acl}`,
      'persistence false',
      'log_dest stderr',
      'log_type all',
      '',
    ].join('\n'),
  );
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(path.join(dir, f), 0o644);
  const proc: ChildProcess = spawn(MOSQUITTO!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${log}`))),
  );
  await Promise.race([waitForPort(port), exited]);
  exited.catch(() => undefined);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      await gone;
    },
  };
}

/** A publish's outcome: the PUBACK's reason code when the broker refused it (MQTT 5), else ok. */
async function tryPub(c: TestClient, topic: string, payload: string): Promise<'ok' | number> {
  try {
    await c.pub(topic, payload);
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}

function mosquittoMajor(broker: Broker): number {
  return Number(/mosquitto version (\d+)\./.exec(broker.log())?.[1] ?? 0);
}

let seq = 0;
/** A payload no other check uses, so a stray message can be told apart. */
const token = (what: string) => `${what}-${++seq}`;

describe.skipIf(!available)('homelab-cmd acl: the generated files in a real Mosquitto', () => {
  let dir: string;
  let broker: Broker;
  let agentA: TestClient;
  let agentB: TestClient;
  let ctl: TestClient;
  const clients: TestClient[] = [];

  const connect = async (
    username: string,
    password: string,
    opts: Parameters<typeof TestClient.connect>[1] = {},
  ) => {
    const c = await TestClient.connect(broker.url, { username, password, ...opts });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hc-acl-'));
    writeFileSync(path.join(dir, 'agent-a.pw'), `${PW.a}\n`);
    const configFile = path.join(dir, 'broker.yaml');
    const yaml = [
      'broker:',
      '  users:',
      '    - { username: agent-a, password_file: agent-a.pw, role: agent, host: a }',
      `    - { username: agent-b, password: ${JSON.stringify(PW.b)}, role: agent, host: b }`,
      // A username with a space: acl_file's user line takes the rest of the line.
      `    - { username: Home Assistant, password: ${JSON.stringify(PW.ctl)}, role: controller }`,
      '',
    ].join('\n');
    writeFileSync(configFile, yaml);
    const config = parseConfig(yaml, configFile, {});

    // The generated script makes the password file, with the real mosquitto_passwd.
    const passwd = path.join(dir, 'passwd');
    const script = mosquittoPasswd(config, { passwdFile: passwd, reveal: true });
    const made = spawnSync('sh', ['-c', script], {
      encoding: 'utf8',
      env: { PATH: `${path.dirname(PASSWD!)}:/usr/bin:/bin` },
    });
    expect(made.status, `${made.stderr}\n${script}`).toBe(0);
    const acl = path.join(dir, 'acl');
    writeFileSync(acl, mosquittoAcl(config));

    broker = await startSecuredMosquitto(dir, { passwd, acl });
    agentA = await connect('agent-a', PW.a);
    agentB = await connect('agent-b', PW.b);
    ctl = await connect('Home Assistant', PW.ctl);
    await ctl.sub('#');
  });

  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses anonymous clients, wrong passwords and unknown users', async () => {
    const attempts: [string, Parameters<typeof TestClient.connect>[1]][] = [
      ['anonymous', {}],
      ['wrong password', { username: 'agent-a', password: 'nope' }],
      ['unknown user', { username: 'mallory', password: PW.a }],
      // The ACL names users, not client ids: a client id of "agent-a" is nobody.
      ['client id only', { clientId: 'agent-a' }],
    ];
    for (const [what, opts] of attempts) {
      await expect(TestClient.connect(broker.url, opts), what).rejects.toThrow(
        /not authori[sz]ed|bad user name or password|Connection refused/i,
      );
    }
  });

  it('lets agent a publish every topic the contract gives an agent', async () => {
    const allowed = [
      'homelab/a/status',
      'homelab/a/heartbeat',
      'homelab/a/result',
      'homelab/a/result/req-1',
      'homelab/a/output/req-1',
      'homelab/a/param/set_mode/mode',
      'homelab/_fleet/stagger/dns/last/a',
      'homelab/_fleet/stagger/dns/claim/a',
      'homelab/_fleet/stagger/dns/member/a',
      'homeassistant/button/a/restart_dns/config',
      'homeassistant/sensor/a/last_result/config',
      'homelab/a/reply/cli-123/x',
    ];
    for (const topic of allowed) {
      const payload = token('allowed');
      expect(await tryPub(agentA, topic, payload), topic).toBe('ok');
      await ctl.wait((m) => m.topic === topic && m.text === payload, 5000, `${topic} from agent a`);
    }
  });

  it("drops what agent a may not publish: commands (even its own), param sets, other hosts' topics, HA's birth", async () => {
    const refused = [
      'homelab/b/cmd/x',
      'homelab/a/cmd/x',
      'homelab/a/cmd',
      'homelab/a/param/x/y/set',
      'homelab/b/status',
      'homelab/b/result/req-1',
      'homelab/b/param/x/y',
      'homeassistant/button/b/restart_dns/config',
      'homeassistant/status',
      // Another host's fleet records, a ghost's membership, the shared group record of old.
      'homelab/_fleet/stagger/dns/last/b',
      'homelab/_fleet/stagger/dns/member/ghost',
      'homelab/_fleet/stagger/dns',
      // Replies: only under its own P/H/reply/ (another host's, or the old shared space, would be forgeable).
      'homelab/b/reply/cli-1',
      'homelab/_reply/cli-1',
      // Outside the contract's topic table (the embedded broker's P/H/# would allow these).
      'homelab/a',
      'homelab/a/other',
      'homelab/a/param/x',
      'elsewhere/topic',
    ];
    const payload = token('refused');
    const acks = new Map<string, 'ok' | number>();
    for (const topic of refused) acks.set(topic, await tryPub(agentA, topic, payload));
    const marker = token('marker');
    await agentA.pub('homelab/a/heartbeat', marker);
    await ctl.wait((m) => m.topic === 'homelab/a/heartbeat' && m.text === marker, 5000, 'the marker');
    expect(ctl.messages.filter((m) => m.text === payload).map((m) => m.topic)).toEqual([]);
    // Mosquitto 2 answers a refused QoS 1 publish on MQTT 5 with PUBACK 0x87 (not authorized);
    // 1.x acknowledged it as a success and dropped it. Either way nothing was delivered.
    for (const [topic, ack] of acks) expect(ack, topic).toBe(mosquittoMajor(broker) >= 2 ? 0x87 : 'ok');
  });

  it("delivers to agent a its own commands and params, all status topics and HA's birth — nothing of host b", async () => {
    const subacks: Record<string, number> = {};
    for (const filter of [
      'homelab/a/cmd/#',
      'homelab/a/param/#',
      'homelab/+/status',
      'homeassistant/status',
      'homelab/_fleet/#',
      'homelab/b/cmd/#',
      'homelab/b/param/#',
      'homelab/b/result/#',
    ]) {
      const granted = await agentA.client.subscribeAsync(filter, { qos: 1 });
      subacks[filter] = granted[0]?.qos ?? -1;
    }
    // Mosquitto judges reads when it delivers: a subscription outside the grants is granted
    // (SUBACK QoS 1 from 2.0.11 too) and simply stays empty.
    expect(subacks['homelab/a/cmd/#']).toBe(1);

    const hidden = token('hidden');
    const shown = token('shown');
    // From the controller: host b's command and param set are refused to a; a's own command is the marker.
    await ctl.pub('homelab/b/cmd/restart_dns', hidden);
    await ctl.pub('homelab/b/param/x/y/set', hidden);
    await ctl.pub('homelab/a/param/set_mode/mode/set', shown);
    await ctl.pub('homeassistant/status', shown);
    await ctl.pub('homelab/a/cmd/restart_dns', shown);
    // From agent b: its results are refused to a; its status is allowed (stagger reads peers' status).
    await agentB.pub('homelab/b/result/req-9', hidden);
    await agentB.pub('homelab/b/status', shown);

    await agentA.wait(
      (m) => m.topic === 'homelab/a/cmd/restart_dns' && m.text === shown,
      5000,
      "a's own command",
    );
    await agentA.wait((m) => m.topic === 'homelab/b/status' && m.text === shown, 5000, "b's status");
    expect(
      agentA.messages
        .filter((m) => m.text === shown)
        .map((m) => m.topic)
        .sort(),
    ).toEqual([
      'homeassistant/status',
      'homelab/a/cmd/restart_dns',
      'homelab/a/param/set_mode/mode/set',
      'homelab/b/status',
    ]);
    expect(agentA.messages.filter((m) => m.text === hidden).map((m) => m.topic)).toEqual([]);
    // Agent b did get its own command: the refusal above is about who reads, not what was sent.
    await agentB.sub('homelab/b/cmd/#');
    const forB = token('for-b');
    await ctl.pub('homelab/b/cmd/restart_dns', forB);
    await agentB.wait(
      (m) => m.topic === 'homelab/b/cmd/restart_dns' && m.text === forB,
      5000,
      "b's own command",
    );
  });

  it('lets the controller command any host and set params, and nothing it should not write', async () => {
    const allowed = [
      'homelab/a/cmd/restart_dns',
      'homelab/b/cmd',
      'homelab/a/param/set_mode/mode/set',
      'homeassistant/status',
    ];
    for (const topic of allowed) {
      const payload = token('ctl');
      expect(await tryPub(ctl, topic, payload), topic).toBe('ok');
      await ctl.wait((m) => m.topic === topic && m.text === payload, 5000, `${topic} from the controller`);
    }
    // A controller cannot pose as an agent: no status, results, discovery or fleet claims.
    const payload = token('ctl-refused');
    for (const topic of [
      'homelab/a/status',
      'homelab/a/result',
      'homelab/a/result/req-1',
      'homeassistant/button/a/x/config',
      'homelab/_fleet/stagger/dns',
      'homelab/a/param/x/y',
      'homelab/a/reply/cli-1',
      'homelab/_reply/cli-1',
    ]) {
      await tryPub(ctl, topic, payload);
    }
    const marker = token('marker');
    await ctl.pub('homelab/a/cmd/marker', marker);
    await ctl.wait((m) => m.text === marker, 5000, 'the marker');
    expect(ctl.messages.filter((m) => m.text === payload).map((m) => m.topic)).toEqual([]);
  });

  it('the controller reads everything under the prefixes, but "#" does not reach $SYS', async () => {
    // Retained on both: $SYS/broker/version from the broker itself, the marker from agent a.
    const marker = token('online');
    await agentA.pub('homelab/a/status', marker, { retain: true });
    const reader = await connect('Home Assistant', PW.ctl);
    await reader.sub('$SYS/broker/version');
    await reader.sub('homelab/a/status');
    await reader.wait(
      (m) => m.topic === 'homelab/a/status' && m.text === marker,
      5000,
      'the retained status',
    );
    expect(reader.messages.filter((m) => m.topic.startsWith('$SYS'))).toEqual([]);
  });

  it("lets agent a's last will (offline on its status topic) through", async () => {
    const will = token('offline');
    const dying = await connect('agent-a', PW.a, {
      will: { topic: 'homelab/a/status', payload: Buffer.from(will), qos: 1, retain: false },
    });
    dying.client.stream.destroy();
    await ctl.wait((m) => m.topic === 'homelab/a/status' && m.text === will, 10_000, 'the last will');
  });

  it('the broker logged the refusals it made (log_type debug: for whoever debugs a silent drop)', () => {
    const denied = broker
      .log()
      .split('\n')
      .filter((l) => l.includes('Denied PUBLISH'));
    expect(denied.join('\n')).toMatch(/Denied PUBLISH from .* 'homelab\/a\/cmd\/x'/);
  });
});
