/**
 * OS updates through a real agent and broker (docs/updates.md): fake apt-get and apt-mark on the test
 * PATH print real `apt-get -s` output (a security update, a phased one, a held one) and, as the
 * install action, apt's Status-Fd progress lines; the reboot-required file is a real file here.
 */
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import { calls, fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';

const h = new Harness();
let ha: TestClient;
const host = 'pi-upd';
const dir = tempDir();
const aptOut = path.join(dir, 'apt-output.txt');
const go = path.join(dir, 'go');
const reboot = path.join(dir, 'reboot-required');
const fixture = (n: string) => path.resolve('test/fixtures/apt', n);
let bin = '';
let stateDir = '';
let agent: Agent;

const agentOpts = () => ({
  stateDir,
  binDir: bin,
  extra: {
    updates: { enabled: true, check: '1h', install_action: 'apply_updates', reboot_required_file: reboot },
  },
});
const actions = {
  apply_updates: { argv: ['apt-get', '-y', '-o', 'APT::Status-Fd=1', 'upgrade'] },
  marker: { argv: ['true'] },
};
const installs = () => calls(dir).filter((c) => c.startsWith('apt-get -y')).length;

beforeAll(async () => {
  await h.start();
  ha = await TestClient.connect(h.url);
  await ha.sub(`homelab/${host}/updates`, `homelab/${host}/reboot_required`, 'homeassistant/#');
  copyFileSync(fixture('upgrade-debian.txt'), aptOut);
  // apt-get -s prints the recorded simulation; the install prints progress, waits for the test's go,
  // then leaves nothing pending and asks for a reboot, as a kernel or libc upgrade does.
  bin = fakeBin(
    dir,
    'apt-get',
    `if [ "$1" = "-s" ]; then cat "${aptOut}"; exit 0; fi
echo "dlstatus:1:50:Retrieving file 1 of 2"
echo "pmstatus:openssl:20:Unpacking openssl"
while [ ! -e "${go}" ]; do sleep 0.05; done
echo "pmstatus:tzdata:100:Installed tzdata"
cp "${fixture('upgrade-none.txt')}" "${aptOut}"
echo openssl > "${reboot}.pkgs"; : > "${reboot}"`,
  );
  fakeBin(dir, 'apt-mark', 'echo libcurl4');
  stateDir = `${dir}/state`;
  agent = (await h.agent(host, actions, agentOpts())).agent;
}, 60_000);

afterAll(async () => {
  await h.stop();
  await ha.end();
});

interface UpdateState {
  installed_version: string;
  latest_version: string;
  release_summary: string;
  in_progress: boolean;
  update_percentage: number | null;
  pending: number;
  security: number;
  phased: string[];
  held: string[];
  error: string | null;
}
const updates = (pred: (s: UpdateState) => boolean, ms = 20_000) =>
  ha.waitJson<UpdateState>(`homelab/${host}/updates`, pred, ms);
const rebootState = (pred: (s: { required: boolean; packages: string[] }) => boolean) =>
  ha.waitJson<{ required: boolean; packages: string[] }>(`homelab/${host}/reboot_required`, pred, 20_000);

it('discovery: the update entity presses apply_updates; the reboot sensor reads its topic', async () => {
  const cfg = await ha.waitJson(`homeassistant/update/${host}/os_updates/config`);
  expect(cfg).toMatchObject({
    name: 'OS updates',
    state_topic: `homelab/${host}/updates`,
    command_topic: `homelab/${host}/cmd/apply_updates`,
    payload_install: 'PRESS',
    qos: 0,
  });
  await ha.waitJson(
    `homeassistant/binary_sensor/${host}/reboot_required/config`,
    (c) => c.device_class === 'problem',
  );
});

it('the retained state: 3 packages (1 security), phased and held left out; no reboot required', async () => {
  const s = await updates(() => true);
  expect(s).toMatchObject({
    release_summary: '3 packages (1 security): openssl, curl, tzdata',
    in_progress: false,
    update_percentage: null,
    pending: 3,
    security: 1,
    phased: ['systemd-timesyncd'],
    held: ['libcurl4'],
    error: null,
  });
  expect(s.latest_version).toMatch(/^3 packages · [0-9a-f]{8}$/);
  expect(s.installed_version).not.toBe(s.latest_version);
  expect((await rebootState(() => true)).required).toBe(false);
  expect(calls(dir)).toContain('apt-get -s -o Debug::NoLocking=1 upgrade');
});

it('Install runs the action: in_progress with apt progress, then re-checked: up to date, reboot required', async () => {
  const before = await updates(() => true);
  const result = h.press(host, 'apply_updates', 'PRESS', 30_000);
  const during = await updates((s) => s.in_progress && s.update_percentage === 60);
  expect(during.latest_version).toBe(before.latest_version);
  writeFileSync(go, '');
  expect((await result).status).toBe('succeeded');
  const after = await updates((s) => !s.in_progress && s.pending === 0);
  expect(after).toMatchObject({
    installed_version: 'up to date',
    latest_version: 'up to date',
    update_percentage: null,
  });
  expect(await rebootState((r) => r.required)).toMatchObject({ packages: ['openssl'] });
});

it('an Install pressed while the host is down (QoS 0, as HA sends it) is dropped, never run late; the reboot flag clears at start', async () => {
  expect(existsSync(reboot)).toBe(true);
  expect(installs()).toBe(1);
  await h.stopAgent(agent);
  // A QoS 0 publish is done once it is written to the socket; the broker may route it tens of ms later.
  // HA's own subscription to the command topic is the witness: once HA got the press back, the broker
  // has routed it, while the agent was down. Without it the agent could be back before the press is
  // routed, and run it as a press sent while it was online (seen 1 run in 12).
  const pressTopic = `homelab/${host}/cmd/apply_updates`;
  await ha.sub(pressTopic);
  const routed = ha.next((m) => m.topic === pressTopic, 10_000, 'the press routed by the broker');
  await ha.pub(pressTopic, 'PRESS', { qos: 0 });
  await routed;
  rmSync(reboot);
  rmSync(`${reboot}.pkgs`);
  const cleared = ha.next(
    (m) => m.topic === `homelab/${host}/reboot_required` && m.text.includes('"required":false'),
    20_000,
    'reboot_required false after the restart',
  );
  agent = (await h.agent(host, actions, agentOpts())).agent;
  expect(JSON.parse((await cleared).text)).toMatchObject({ required: false, packages: [] });
  // A request sent after the restart: the broker delivers what it queued for the session before it.
  expect((await h.request(host, { action: 'marker' })).status).toBe('succeeded');
  expect(installs()).toBe(1);
});
