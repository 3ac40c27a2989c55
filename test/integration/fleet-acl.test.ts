/**
 * Fleet topics under the embedded broker's role ACL (docs/stagger.md § Topics): an agent account
 * writes only the fleet topics ending in its own host id — and real agents still coordinate with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import type { Result } from '../../src/core/result.js';
import { silentLogger } from '../../src/log.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { withDeadline } from '../helpers/wait.js';

const USERS = [
  { username: 'agent-fa', password: 'pw-fa', role: 'agent' as const, host: 'fa' },
  { username: 'agent-fb', password: 'pw-fb', role: 'agent' as const, host: 'fb' },
  { username: 'ctl', password: 'pw-ctl', role: 'controller' as const },
];
let broker: RunningBroker;
let url: string;
let ctl: TestClient;
const procs: AgentProcess[] = [];

beforeAll(async () => {
  broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    users: USERS,
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    log: silentLogger(),
  });
  url = `mqtt://127.0.0.1:${broker.port}`;
  ctl = await TestClient.connect(url, { username: 'ctl', password: 'pw-ctl' });
  await ctl.sub('homelab/#');
});
afterAll(async () => {
  for (const p of procs) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  }
  await ctl.end();
  await broker.close();
});

describe('embedded broker with users: fleet topics', () => {
  it("agent fa cannot write fb's records, a ghost's membership, or the shared group record of old", async () => {
    const fa = await TestClient.connect(url, {
      username: 'agent-fa',
      password: 'pw-fa',
      clientId: 'homelab-cmd-fa',
    });
    const poison = (host: string) =>
      JSON.stringify({ host, action: 'restart_dns', id: 'x-1', at: '2999-01-01T00:00:00.000Z' });
    // MQTT 5: an unauthorised QoS 1 publish is answered with PUBACK 0x87, which MQTT.js raises.
    await expect(fa.pub('homelab/_fleet/stagger/dns/last/fb', poison('fb'))).rejects.toThrow();
    await expect(fa.pub('homelab/_fleet/stagger/dns', poison('fb'))).rejects.toThrow();
    await expect(
      fa.pub('homelab/_fleet/stagger/dns/member/ghost', JSON.stringify({ host: 'ghost' })),
    ).rejects.toThrow();
    await expect(fa.pub('homelab/_fleet/stagger/fa/last/fb', poison('fb'))).rejects.toThrow();
    // Its own it may write; the marker also proves nothing refused was delivered before it.
    await fa.pub('homelab/_fleet/stagger/dns/last/fa', 'marker');
    await ctl.wait((m) => m.topic === 'homelab/_fleet/stagger/dns/last/fa', 5000, 'the marker');
    expect(ctl.messages.filter((m) => m.text.includes('2999') || m.topic.endsWith('/ghost'))).toEqual([]);
    await fa.end();
  });

  it('two agents, each with its own account, still space their runs by the interval', async () => {
    const dir = tempDir();
    fakeBin(dir, 'pihole', 'exit 0');
    for (const u of USERS.filter((x) => x.role === 'agent')) {
      const config = writeConfig(
        dir,
        {
          host: u.host,
          state_dir: `${dir}/state-${u.host}`,
          mqtt: { url, username: u.username, password: u.password, keepalive: '2s' },
          heartbeat: { interval: '1h' },
          execution: { enabled: true, path: testPath(`${dir}/bin`) },
          actions: {
            restart_dns: {
              argv: ['pihole', 'restartdns'],
              stagger: { group: 'acl', interval: '3s', settle: '300ms' },
            },
          },
        },
        `${u.host}.yaml`,
      );
      procs.push(spawnCli(['agent', '--config', config]));
    }
    for (const h of ['fa', 'fb'])
      await ctl.wait((m) => m.topic === `homelab/${h}/status` && m.text === 'online', 15_000, `${h} online`);
    const result = (h: string, id: string, pred: (r: Result) => boolean) =>
      ctl
        .next(
          (m) =>
            m.topic === `homelab/${h}/result/${id}` && m.text !== '' && pred(JSON.parse(m.text) as Result),
          20_000,
          `${id}`,
        )
        .then((m) => JSON.parse(m.text) as Result);
    const aDone = result('fa', 'acl-1', (r) => r.status === 'succeeded');
    await ctl.pub('homelab/fa/cmd/restart_dns', JSON.stringify({ id: 'acl-1' }));
    const a = await aDone;
    const record = await ctl.wait(
      (m) => m.topic === 'homelab/_fleet/stagger/acl/last/fa' && m.text.includes('acl-1'),
      5000,
      "fa's record",
    );
    const bSched = result('fb', 'acl-2', (r) => r.status === 'scheduled');
    const bDone = result('fb', 'acl-2', (r) => r.status === 'succeeded');
    await ctl.pub('homelab/fb/cmd/restart_dns', JSON.stringify({ id: 'acl-2' }));
    const s = await withDeadline(bSched, 20_000, 'fb scheduled');
    const at = Date.parse((JSON.parse(record.text) as { at: string }).at);
    expect(Date.parse(s.run_at!)).toBeGreaterThanOrEqual(at + 3000 - 50);
    const b = await bDone;
    expect(Date.parse(b.executed_at!) - Date.parse(a.executed_at!)).toBeGreaterThanOrEqual(3000 - 100);
  });
});
