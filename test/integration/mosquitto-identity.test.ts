/**
 * Broker identities with the Mosquitto setup `homelab-cmd acl` writes (docs/security.md § Broker
 * identities): the generated mosquitto.conf lines, acl_file and password file, in a real Mosquitto on
 * a free port. What Mosquitto can enforce is tested here; what it cannot is listed in the docs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoAcl, mosquittoConf, mosquittoPasswd } from '../../src/cli/acl.js';
import { parseConfig } from '../../src/config/load.js';
import { MOSQUITTO, findBinary, reportMissing } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort, waitForPort } from '../helpers/net.js';
import { withDeadline } from '../helpers/wait.js';

const PASSWD = findBinary('mosquitto_passwd');
if (!MOSQUITTO || !PASSWD)
  reportMissing('mosquitto and mosquitto_passwd', 'the generated Mosquitto identity tests');

const PW: Record<string, string> = { 'agent-a': 'pw-a', 'agent-b': 'pw-b', ctl: 'pw-ctl', ctl2: 'pw-ctl2' };
const as = (user: string, clientId: string, extra: Record<string, unknown> = {}) => ({
  username: user,
  password: PW[user],
  clientId,
  ...extra,
});

describe.skipIf(!MOSQUITTO || !PASSWD)(
  'the Mosquitto setup homelab-cmd acl writes, in a real Mosquitto',
  () => {
    let dir: string;
    let proc: ChildProcess;
    let url: string;
    let port: number;
    let log = '';
    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'hc-mosq-id-'));
      const configFile = path.join(dir, 'broker.yaml');
      const yaml = `broker:
  users:
    - { username: agent-a, password: pw-a, role: agent, host: a }
    - { username: agent-b, password: pw-b, role: agent, host: b }
    - { username: ctl, password: pw-ctl, role: controller }
    - { username: ctl2, password: pw-ctl2, role: controller }
`;
      writeFileSync(configFile, yaml);
      const config = parseConfig(yaml, configFile, {});
      const files = { passwd: path.join(dir, 'passwd'), acl: path.join(dir, 'homelab-cmd.acl') };
      const script = path.join(dir, 'passwd.sh');
      writeFileSync(script, mosquittoPasswd(config, { passwdFile: files.passwd, reveal: true }));
      const made = spawnSync('sh', [script], {
        env: { ...process.env, PATH: `${path.dirname(PASSWD!)}:${process.env.PATH ?? ''}` },
      });
      expect(made.status, made.stderr.toString()).toBe(0);
      writeFileSync(files.acl, mosquittoAcl(config));
      port = await freePort();
      url = `mqtt://127.0.0.1:${port}`;
      const conf = path.join(dir, 'mosquitto.conf');
      // The generated lines as written, plus what any test broker needs (a port of its own, no disk).
      writeFileSync(
        conf,
        `listener ${port} 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type all\n${mosquittoConf(config, files)}`,
      );
      chmodSync(dir, 0o755);
      for (const f of readdirSync(dir)) chmodSync(path.join(dir, f), 0o644);
      proc = spawn(MOSQUITTO!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      proc.stderr?.on('data', (c: Buffer) => (log += c.toString()));
      await waitForPort(port);
    });
    afterAll(async () => {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it("no other account takes over an agent's session by its client id: the id becomes the username", async () => {
      const session = { clean: false, properties: { sessionExpiryInterval: 3600 } };
      const agent = await TestClient.connect(url, as('agent-a', 'homelab-cmd-a', session));
      await agent.client.subscribeAsync('homelab/a/cmd/#', { qos: 1 });
      await agent.end();
      const ctl = await TestClient.connect(url, as('ctl2', 'ctl-1'));
      await ctl.client.publishAsync('homelab/a/cmd/x', 'queued-for-a', { qos: 1 });
      // Same client id as the agent, other accounts: each gets a session of its own name.
      const thief = await TestClient.connect(url, as('ctl', 'homelab-cmd-a', session));
      const otherAgent = await TestClient.connect(url, as('agent-b', 'homelab-cmd-a', session));
      await thief.client.subscribeAsync('homelab/#', { qos: 1 });
      const back = await TestClient.connect(url, as('agent-a', 'homelab-cmd-a', session));
      expect((await back.wait((m) => m.topic === 'homelab/a/cmd/x', 10_000)).text).toBe('queued-for-a');
      expect(thief.client.connected && otherAgent.client.connected).toBe(true);
      expect(log).not.toMatch(/Client homelab-cmd-a already connected/);
      await ctl.client.publishAsync('homelab/a/cmd/marker', 'm', { qos: 1 });
      await thief.wait((m) => m.topic === 'homelab/a/cmd/marker');
      expect(thief.messages.filter((m) => m.text === 'queued-for-a')).toEqual([]);
      await Promise.all([ctl, thief, otherAgent, back].map((c) => c.end()));
    });

    it("a will outside the account's rights never goes out", async () => {
      const watcher = await TestClient.connect(url, as('ctl', 'ctl-2'));
      await watcher.sub('homelab/#');
      const raw = await TestClient.connect(
        url,
        as('agent-b', 'x', {
          keepalive: 60,
          will: { topic: 'homelab/a/cmd/reboot', payload: Buffer.from('{}'), qos: 1, retain: false },
        }),
      ).catch((err: Error) => err);
      if (raw instanceof TestClient) raw.client.stream.destroy(); // no DISCONNECT: the will fires
      const marker = await TestClient.connect(
        url,
        as('agent-b', 'y', {
          keepalive: 60,
          will: { topic: 'homelab/b/status', payload: Buffer.from('offline'), qos: 1, retain: false },
        }),
      );
      marker.client.stream.destroy();
      await watcher.wait((m) => m.topic === 'homelab/b/status' && m.text === 'offline', 10_000);
      expect(watcher.messages.filter((m) => m.topic.startsWith('homelab/a/cmd'))).toEqual([]);
      await watcher.end();
    });

    it('a packet over max_packet_size disconnects its sender (broker.max_packet_size, 1 MiB by default)', async () => {
      // MQTT 3.1.1: the client cannot know the limit, so it sends; an MQTT 5 client is told in the CONNACK.
      const big = await TestClient.connect(url, as('ctl2', 'ctl-big', { protocolVersion: 4 }));
      const closed = new Promise<void>((r) => big.client.once('close', () => r()));
      big.client.publish('homelab/a/cmd/x', Buffer.alloc(2 * 1024 * 1024), { qos: 0 });
      await withDeadline(closed, 10_000, 'Mosquitto to drop the client');
      big.client.end(true);
    });
  },
);
