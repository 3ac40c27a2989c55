/**
 * Reboot actions (docs/configuration.md § Reboots) with real agent processes: a "reboot" is the agent
 * killed (as a host going down kills it), its boot id file changed, and the agent started again by a
 * supervisor that stands in for the host's boot. Fake reboot/systemctl/apt-get/check executables on a
 * test PATH; a real broker; the CLI as a child process.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBroker } from '../../src/broker/broker.js';
import { startTestBroker } from '../helpers/harness.js';
import { resultSchema } from '../../src/core/formats.js';
import type { Result } from '../../src/core/result.js';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { slack, until } from '../helpers/wait.js';

/** One host: its agent process, its boot id file, and a supervisor that boots it again after a kill. */
class Host {
  readonly dir = tempDir('hc-reboot-');
  readonly bootFile = path.join(this.dir, 'boot_id');
  proc: AgentProcess | undefined;
  /** Each time the agent went down (killed, or stopped by a SIGTERM) and came back. */
  readonly downs: { down: number; up: number | undefined }[] = [];
  /** What the next boot does to the boot id: a reboot changes it, an agent restart keeps it. */
  rebootOnKill = true;
  /** How long the host stays down (its shutdown and boot) before the agent starts again. */
  bootMs = 0;
  private stopping = false;
  private boots = 1;

  constructor(
    readonly host: string,
    private readonly config: (h: Host) => Record<string, unknown>,
    bins: Record<string, string>,
  ) {
    writeFileSync(this.bootFile, `${this.host}-boot-1\n`);
    for (const [name, body] of Object.entries(bins)) fakeBin(this.dir, name, body);
  }

  get bin(): string {
    return path.join(this.dir, 'bin');
  }

  get bootId(): string {
    return readFileSync(this.bootFile, 'utf8').trim();
  }

  start(): void {
    const file = writeConfig(this.dir, this.config(this));
    const proc = spawnCli(['agent', '--config', file]);
    this.proc = proc;
    void proc.exited.then(() => {
      if (this.stopping || this.proc !== proc) return;
      // The host went down: it boots again (a new boot id unless this is an agent restart alone).
      this.downs.push({ down: Date.now(), up: undefined });
      if (this.rebootOnKill) writeFileSync(this.bootFile, `${this.host}-boot-${++this.boots}\n`);
      // A boot takes a while: the time the host is away, not a wait for anything.
      setTimeout(() => {
        if (this.stopping) return;
        this.start();
        const d = this.downs.at(-1);
        if (d) d.up = Date.now();
      }, this.bootMs);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const p = this.proc;
    if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
    p.proc.kill('SIGKILL');
    await p.exited;
  }
}

let broker: RunningBroker;
let url = '';
let ctl: TestClient;
const hosts: Host[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  url = `mqtt://127.0.0.1:${broker.port}`;
  ctl = await TestClient.connect(url);
  await ctl.sub('homelab/+/result/#', 'homelab/+/reboot', 'homelab/+/status', 'homelab/_fleet/#');
});

afterAll(async () => {
  for (const h of hosts) await h.stop();
  await ctl?.end();
  await broker?.close();
});

const parse = (text: string): Result => resultSchema.parse(JSON.parse(text));

/** Every result published on the id's topic, in order. */
function resultsOf(host: string, id: string): Result[] {
  return ctl.on(`homelab/${host}/result/${id}`).flatMap((m) => (m.text === '' ? [] : [parse(m.text)]));
}

function finalOf(host: string, id: string, ms = 30_000): Promise<Result> {
  return ctl
    .wait(
      (m) =>
        m.topic === `homelab/${host}/result/${id}` &&
        m.text !== '' &&
        !['running', 'rebooting', 'scheduled'].includes(parse(m.text).status),
      ms,
      `the final result of ${id} on ${host}`,
    )
    .then((m) => parse(m.text));
}

/** A host whose agent has one reboot action, `reboot` (argv from `argv`), checked by a tcp probe of the broker. */
function singleHost(name: string, bins: Record<string, string>, argv: string[], grace = '5s'): Host {
  const h = new Host(
    name,
    (self) => ({
      host: name,
      state_dir: path.join(self.dir, 'state'),
      mqtt: { url, keepalive: '5s' },
      heartbeat: { interval: '5s' },
      execution: { enabled: true, path: testPath(self.bin), shutdown_grace: grace },
      probes: { broker_port: { type: 'tcp', host: '127.0.0.1', port: broker.port, interval: '1m' } },
      actions: {
        reboot: {
          argv,
          reboot: { boot_id_file: self.bootFile, down_within: '1m', healthy_within: '5s' },
        },
      },
    }),
    bins,
  );
  hosts.push(h);
  return h;
}

async function online(host: string): Promise<void> {
  await ctl.wait(
    (m) => m.topic === `homelab/${host}/status` && m.text === 'online',
    20_000,
    `${host} online`,
  );
}

describe('a reboot action', () => {
  // The fake reboot takes the host down at once: the agent (its parent) is killed mid-command.
  const KILL_PARENT = 'kill -9 $PPID; sleep 5';

  it('goes running → rebooting, and succeeded with the downtime once the boot id changed and the probe passes', async () => {
    const h = singleHost('rb-ok', { reboot: KILL_PARENT }, ['reboot']);
    h.start();
    await online('rb-ok');
    const id = `rb-${randomUUID()}`;
    const send = runCli(['send', 'rb-ok', 'reboot', '--id', id, '--url', url, '--wait', '60']);
    const final = await finalOf('rb-ok', id, 60_000);
    const sent = await send;

    const seen = resultsOf('rb-ok', id).map((r) => r.status);
    expect(seen.slice(0, 2)).toEqual(['running', 'rebooting']);
    expect(seen.at(-1)).toBe('succeeded');
    const rebooting = resultsOf('rb-ok', id).find((r) => r.status === 'rebooting');
    expect(rebooting?.reboot?.boot_id_before).toBe('rb-ok-boot-1');

    expect(final.status).toBe('succeeded');
    expect(final.reboot?.boot_id_before).toBe('rb-ok-boot-1');
    expect(final.reboot?.boot_id_after).toBe('rb-ok-boot-2');
    expect(final.reboot?.downtime_ms).toBeGreaterThan(0);
    expect(final.health?.passed).toBe(true);
    expect(final.health?.output).toContain('broker_port');
    expect(h.downs).toHaveLength(1);

    // The CLI waited through `rebooting` for the final.
    expect(sent.code).toBe(0);
    expect((JSON.parse(sent.stdout) as Result).status).toBe('succeeded');
    // HA's Last reboot sensor reads P/H/reboot: rebooting while down, then the final.
    const states = ctl.on('homelab/rb-ok/reboot').map((m) => parse(m.text).status);
    expect(states).toEqual(['rebooting', 'succeeded']);

    // Never re-run: the same id again gets the stored result, and reboot ran once.
    const again = await runCli(['send', 'rb-ok', 'reboot', '--id', id, '--url', url, '--wait', '20']);
    expect((JSON.parse(again.stdout) as Result).status).toBe('succeeded');
    expect(calls(h.dir).filter((c) => c.startsWith('reboot'))).toHaveLength(1);
  });

  it('is failed / not_rebooted when the agent comes back with the same boot id, and is never re-run', async () => {
    const h = singleHost('rb-same', { reboot: KILL_PARENT }, ['reboot']);
    h.rebootOnKill = false; // only the agent restarts
    h.start();
    await online('rb-same');
    const id = `rb-${randomUUID()}`;
    await ctl.pub('homelab/rb-same/cmd/reboot', JSON.stringify({ id }));
    const final = await finalOf('rb-same', id, 60_000);
    expect(final.status).toBe('failed');
    expect(final.error_code).toBe('not_rebooted');
    expect(final.error).toContain('boot id is still rb-same-boot-1');
    expect(final.reboot?.boot_id_after).toBe('rb-same-boot-1');
    expect(h.downs).toHaveLength(1);
    expect(calls(h.dir).filter((c) => c.startsWith('reboot'))).toHaveLength(1);
  });

  it('keeps rebooting when the command exits 0 and the shutdown stops the agent (SIGTERM), then succeeds', async () => {
    // A long grace: only the stop itself (not the grace running out) may end the wait for the host to go down.
    const h = singleHost('rb-term', { systemctl: 'exit 0' }, ['systemctl', 'reboot'], '2m');
    h.start();
    await online('rb-term');
    const id = `rb-${randomUUID()}`;
    await ctl.pub('homelab/rb-term/cmd/reboot', JSON.stringify({ id }));
    await ctl.wait(
      (m) =>
        m.topic === 'homelab/rb-term/result/' + id && m.text !== '' && parse(m.text).status === 'rebooting',
      20_000,
      'rebooting',
    );
    await until(() => calls(h.dir).some((c) => c === 'systemctl reboot'), 10_000, 'systemctl reboot to run');
    // The shutdown: systemd stops the agent. It must not wait out down_within (1m) or the grace (2m),
    // nor call the reboot interrupted.
    const t0 = Date.now();
    h.proc?.proc.kill('SIGTERM');
    const final = await finalOf('rb-term', id, 60_000);
    expect(h.downs[0]!.down - t0).toBeLessThan(20_000);
    expect(final.status).toBe('succeeded');
    expect(final.reboot?.boot_id_after).toBe('rb-term-boot-2');
    expect(resultsOf('rb-term', id).map((r) => r.status)).not.toContain('interrupted');
  });
});

describe('a rolling update-and-reboot of a stagger group', () => {
  it(
    'goes one host at a time, each back and healthy before the next, and stops at the first failed check',
    async () => {
      const names = ['pi-a', 'pi-b', 'pi-c'];
      const group = names.map((name) => {
        const h = new Host(
          name,
          (self) => ({
            host: name,
            state_dir: path.join(self.dir, 'state'),
            mqtt: { url, keepalive: '5s' },
            heartbeat: { interval: '5s' },
            execution: { enabled: true, path: testPath(self.bin), shutdown_grace: '5s' },
            actions: {
              upgrade_and_reboot: {
                steps: [['apt-get', '-y', 'upgrade'], ['reboot']],
                stagger: { group: 'pis', interval: '1s', settle: '300ms' },
                health: { argv: ['check-health'], retries: 1, delay: '200ms', timeout: '5s' },
                reboot: { boot_id_file: self.bootFile, healthy_within: '1s' },
              },
            },
          }),
          {
            'apt-get': 'echo "Setting up openssl (3.0.15-1~deb12u1) ..."',
            reboot: 'kill -9 $PPID; sleep 5',
            // pi-b comes back with its DNS service down.
            'check-health':
              name === 'pi-b'
                ? 'echo "pihole-FTL is not running" >&2; exit 3'
                : 'echo "pihole-FTL is running"',
          },
        );
        hosts.push(h);
        return h;
      });
      for (const h of group) h.start();
      for (const n of names) await online(n);
      for (const n of names)
        await ctl.wait(
          (m) => m.topic === `homelab/_fleet/groups/${n}` && m.text !== '',
          20_000,
          `${n}'s groups`,
        );

      const run = await runCli([
        'send',
        '--group',
        'pis',
        'upgrade_and_reboot',
        '--serial',
        '--json',
        '--wait',
        '90',
        '--run-id',
        'roll1',
        '--url',
        url,
      ]);
      const summary = JSON.parse(run.stdout) as {
        exit_code: number;
        hosts: { host: string; status: string; error?: string }[];
      };
      expect(run.code).toBe(1);
      const row = (h: string) => summary.hosts.find((r) => r.host === h);
      expect(row('pi-a')?.status).toBe('succeeded');
      expect(row('pi-b')?.status).toBe('failed');
      expect(row('pi-b')?.error).toContain('pihole-FTL is not running');
      expect(row('pi-b')?.error).toContain('group pis stays held');
      expect(row('pi-c')?.status).toBe('not_started');
      // It said when each host went down and came back (minutes of silence otherwise).
      expect(run.stderr).toContain('pi-a: rebooting\n');
      expect(run.stderr).toContain('pi-a: rebooting — back, checking it');
      expect(run.stderr).toContain('pi-b: rebooting\n');

      const a = await finalOf('pi-a', 'roll1-pi-a');
      const b = await finalOf('pi-b', 'roll1-pi-b');
      // pi-a rebooted (new boot id) and passed its check before pi-b started anything.
      expect(a.reboot?.boot_id_after).toBe('pi-a-boot-2');
      expect(a.health?.passed).toBe(true);
      // The steps before the reboot command (which never returns: the host goes down under it).
      expect(a.steps?.map((s) => s.argv.join(' '))).toEqual(['apt-get -y upgrade']);
      expect(a.stdout).toContain('Setting up openssl');
      expect(Date.parse(b.executed_at ?? '')).toBeGreaterThanOrEqual(Date.parse(a.completed_at ?? ''));
      // Never two down at once: pi-b went down only after pi-a was back.
      expect(group[1]!.downs[0]!.down).toBeGreaterThan(group[0]!.downs[0]!.up ?? Infinity);
      // pi-b rebooted but its check failed: it holds the group; pi-c never ran anything.
      expect(b.reboot?.boot_id_after).toBe('pi-b-boot-2');
      expect(b.error_code).toBe('exit_nonzero');
      const heldBy = await ctl.waitJson<{ released?: boolean; id: string }>(
        'homelab/_fleet/stagger/pis/last/pi-b',
        (r) => r.id === 'roll1-pi-b',
      );
      expect(heldBy.released).toBe(false);
      const released = await ctl.waitJson<{ released?: boolean; id: string }>(
        'homelab/_fleet/stagger/pis/last/pi-a',
        (r) => r.id === 'roll1-pi-a' && r.released !== false,
      );
      expect(released.released).toBe(true);
      expect(calls(group[2]!.dir)).toEqual([]);
      // HA's Last reboot sensor got the same final as the id's topic, the group's hold included.
      const lastReboot = ctl.on('homelab/pi-b/reboot').map((m) => m.text);
      expect(lastReboot.at(-1)).toBe(ctl.on('homelab/pi-b/result/roll1-pi-b').at(-1)?.text);

      // The payloads and results of this run, for the closing note.
      if (process.env.HOMELAB_REBOOT_REPORT)
        writeFileSync(
          process.env.HOMELAB_REBOOT_REPORT,
          JSON.stringify(
            {
              summary,
              results: Object.fromEntries(names.map((n) => [n, resultsOf(n, `roll1-${n}`)])),
              records: Object.fromEntries(
                names.map((n) => [n, ctl.on(`homelab/_fleet/stagger/pis/last/${n}`).map((m) => m.text)]),
              ),
              reboot_topic: Object.fromEntries(
                names.map((n) => [n, ctl.on(`homelab/${n}/reboot`).map((m) => m.text)]),
              ),
            },
            null,
            2,
          ),
        );
    },
    slack(80_000),
  );
});

describe('the DNS rule through reboots', () => {
  it(
    'two Pi-holes asked to reboot at once: the second waits, held, until the first is back — never both down',
    async () => {
      const names = ['dns-1', 'dns-2'];
      const pair = names.map((name) => {
        const h = new Host(
          name,
          (self) => ({
            host: name,
            state_dir: path.join(self.dir, 'state'),
            mqtt: { url, keepalive: '5s' },
            heartbeat: { interval: '5s' },
            execution: { enabled: true, path: testPath(self.bin), shutdown_grace: '5s' },
            actions: {
              reboot: {
                argv: ['reboot'],
                // An interval far shorter than a reboot: only the hold keeps the second one waiting.
                stagger: { group: 'dns', interval: '500ms', settle: '300ms' },
                reboot: { boot_id_file: self.bootFile },
              },
            },
          }),
          { reboot: 'kill -9 $PPID; sleep 5' },
        );
        h.bootMs = 2000;
        hosts.push(h);
        return h;
      });
      for (const h of pair) h.start();
      for (const n of names) await online(n);
      for (const n of names)
        await ctl.wait((m) => m.topic === `homelab/_fleet/stagger/dns/member/${n}`, 20_000, `${n} a member`);

      const ids = names.map((n) => `both-${n}-${randomUUID()}`);
      await Promise.all(
        names.map((n, i) => ctl.pub(`homelab/${n}/cmd/reboot`, JSON.stringify({ id: ids[i] }))),
      );
      const finals = await Promise.all(names.map((n, i) => finalOf(n, ids[i]!, 60_000)));
      expect(finals.map((f) => f.status)).toEqual(['succeeded', 'succeeded']);

      const [first, second] = pair[0]!.downs[0]!.down < pair[1]!.downs[0]!.down ? [0, 1] : [1, 0];
      const firstHost = pair[first]!;
      const secondHost = pair[second]!;
      // Never both down: the second went down only after the first was back (and had reported succeeded).
      expect(secondHost.downs[0]!.down).toBeGreaterThan(firstHost.downs[0]!.up ?? Infinity);
      const firstFinal = finals[first]!;
      const secondRun = resultsOf(names[second]!, ids[second]!);
      expect(
        Date.parse(secondRun.find((r) => r.status === 'running')?.executed_at ?? ''),
      ).toBeGreaterThanOrEqual(Date.parse(firstFinal.completed_at ?? ''));
      // Meanwhile it said why it waited: the group was held by the first one's reboot.
      const waited = secondRun.filter((r) => r.status === 'scheduled');
      expect(waited.some((r) => (r.error ?? '').includes('the group is held'))).toBe(true);
    },
    slack(80_000),
  );
});
