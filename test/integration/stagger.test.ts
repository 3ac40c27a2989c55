/**
 * Fleet-wide stagger with agents as separate processes on one real broker.
 * A fake `pihole` logs when each restart starts and ends, so overlaps and gaps
 * are measured, not assumed. Intervals are seconds here; the example uses 30 m.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import type { Result } from '../../src/core/result.js';
import { silentLogger } from '../../src/log.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort } from '../helpers/net.js';
import { FaultProxy } from '../helpers/proxy.js';
import { until, withDeadline } from '../helpers/wait.js';

const FINAL = ['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted'];
let port: number;
let broker: RunningBroker;
let ctl: TestClient;
const procs: AgentProcess[] = [];

const startEmbedded = () =>
  startBroker({
    host: '127.0.0.1',
    port,
    users: [],
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    log: silentLogger(),
  });

beforeAll(async () => {
  port = await freePort();
  broker = await startEmbedded();
  ctl = await TestClient.connect(`mqtt://127.0.0.1:${port}`);
  await ctl.sub('homelab/+/result/#', 'homelab/+/status', 'homelab/_fleet/#');
});
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  }
});
afterAll(async () => {
  await ctl.end();
  await broker.close();
});

/** A fake pihole that logs "start|end <ms> <host> <group>" around a short restart. */
function fakePihole(dir: string): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const log = path.join(dir, 'restarts.log');
  writeFileSync(
    path.join(bin, 'pihole'),
    `#!/bin/sh\necho "start $(date +%s%3N) $HC_HOST $HC_GROUP" >> "${log}"\nsleep 0.2\necho "end $(date +%s%3N) $HC_HOST $HC_GROUP" >> "${log}"\n`,
  );
  chmodSync(path.join(bin, 'pihole'), 0o755);
  return bin;
}

/** Hosts that started a restart, in order, finished or not. */
function starts(dir: string): string[] {
  const file = path.join(dir, 'restarts.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('start '))
    .map((l) => l.split(' ')[2]!);
}

interface Run {
  host: string;
  group: string;
  start: number;
  end: number;
}

function runs(dir: string): Run[] {
  const file = path.join(dir, 'restarts.log');
  if (!existsSync(file)) return [];
  const out: Run[] = [];
  const open = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [kind, ms, host, group] = line.split(' ');
    const key = `${host} ${group}`;
    if (kind === 'start') open.set(key, Number(ms));
    else out.push({ host: host!, group: group!, start: open.get(key)!, end: Number(ms) });
  }
  return out.sort((a, b) => a.start - b.start);
}

/**
 * The group's run starts as the agents recorded them (`at` of each published record, first per run).
 * The spacing rule is about these; the fake's own log adds a few ms of process start-up on each side.
 */
function recordedStarts(group: string): { host: string; at: number }[] {
  const seen = new Map<string, { host: string; at: number }>();
  for (const m of ctl.messages) {
    if (!m.topic.startsWith(`homelab/_fleet/stagger/${group}/last/`) || m.text === '') continue;
    const r = JSON.parse(m.text) as { host: string; id: string; at: string };
    if (!seen.has(r.id)) seen.set(r.id, { host: r.host, at: Date.parse(r.at) });
  }
  return [...seen.values()].sort((a, b) => a.at - b.at);
}

/** Both measures: recorded starts at least `interval` apart; process starts too, within start-up jitter. */
function expectSpaced(group: string, dir: string, interval: number): { recorded: number; process: number } {
  const rec = recordedStarts(group);
  const proc = runs(dir).filter((r) => r.group === group);
  expect(rec).toHaveLength(2);
  expect(proc).toHaveLength(2);
  const recorded = rec[1]!.at - rec[0]!.at;
  const process = proc[1]!.start - proc[0]!.start;
  expect(recorded).toBeGreaterThanOrEqual(interval);
  expect(proc[1]!.start).toBeGreaterThanOrEqual(proc[0]!.end); // never overlapping
  expect(process).toBeGreaterThanOrEqual(interval - 100);
  return { recorded, process };
}

interface AgentSpec {
  host: string;
  groups: string[];
  stagger?: Record<string, unknown>;
  stateDir?: string;
  /** The broker URL, when not the test's broker itself (a proxy in front of it). */
  url?: string;
}

function startFleetAgent(
  dir: string,
  bin: string,
  spec: AgentSpec,
): { proc: AgentProcess; config: string; stateDir: string } {
  const stateDir = spec.stateDir ?? path.join(dir, `state-${spec.host}`);
  const actions = Object.fromEntries(
    spec.groups.map((g) => [
      `restart_dns_${g}`,
      {
        argv: ['pihole', 'restartdns'],
        env: { HC_HOST: spec.host, HC_GROUP: g },
        stagger: { group: g, interval: '2s', settle: '300ms', ...spec.stagger },
      },
    ]),
  );
  const config = writeConfig(
    dir,
    {
      host: spec.host,
      state_dir: stateDir,
      mqtt: { url: spec.url ?? `mqtt://127.0.0.1:${port}`, keepalive: '2s' },
      heartbeat: { interval: '1h' },
      execution: { enabled: true, path: testPath(bin) },
      actions,
    },
    `${spec.host}.yaml`,
  );
  const proc = spawnCli(['agent', '--config', config]);
  procs.push(proc);
  return { proc, config, stateDir };
}

const online = (host: string) =>
  ctl.wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online', 10_000, `${host} online`);
const final = (host: string, id: string, ms = 20_000) =>
  ctl
    .next(
      (m) =>
        m.topic === `homelab/${host}/result/${id}` &&
        m.text !== '' &&
        FINAL.includes((JSON.parse(m.text) as Result).status),
      ms,
      `final result of ${id}`,
    )
    .then((m) => JSON.parse(m.text) as Result);
const scheduled = (host: string, id: string, ms = 10_000) =>
  ctl
    .next(
      (m) => m.topic === `homelab/${host}/result/${id}` && m.text.includes('"scheduled"'),
      ms,
      `scheduled result of ${id}`,
    )
    .then((m) => JSON.parse(m.text) as Result);
const send = (host: string, action: string, id: string) =>
  ctl.pub(`homelab/${host}/cmd/${action}`, JSON.stringify({ id }));

describe('stagger across hosts', () => {
  it("sequential: A runs; B asked right after is scheduled at A's start + interval and runs then", async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    startFleetAgent(dir, bin, { host: 'seq-a', groups: ['seq'] });
    startFleetAgent(dir, bin, { host: 'seq-b', groups: ['seq'] });
    await Promise.all([online('seq-a'), online('seq-b')]);
    const aDone = final('seq-a', 'seq-1');
    await send('seq-a', 'restart_dns_seq', 'seq-1');
    await until(
      () => runs(dir).length === 1 || existsSync(path.join(dir, 'restarts.log')),
      10_000,
      'A to start',
    );
    const bSched = scheduled('seq-b', 'seq-2');
    const bDone = final('seq-b', 'seq-2');
    await send('seq-b', 'restart_dns_seq', 'seq-2');
    const a = await aDone;
    const s = await bSched;
    expect(a.status).toBe('succeeded');
    const record = JSON.parse(ctl.on('homelab/_fleet/stagger/seq/last/seq-a').at(-1)!.text) as {
      host: string;
      at: string;
    };
    expect(record.host).toBe('seq-a');
    expect(Math.abs(Date.parse(s.run_at!) - (Date.parse(record.at) + 2000))).toBeLessThan(1000);
    const b = await bDone;
    expect(b.status).toBe('succeeded');
    expect(runs(dir).map((r) => r.host)).toEqual(['seq-a', 'seq-b']);
    const gap = expectSpaced('seq', dir, 2000);
    process.stderr.write(
      `stagger sequential: B started ${gap.recorded} ms after A by the records, ${gap.process} ms by the processes (interval 2000 ms)\n`,
    );
  });

  it('simultaneous: A and B asked in the same instant, 20 times with fresh groups — never overlapping, always an interval apart', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    const groups = Array.from({ length: 20 }, (_, i) => `sim${i}`);
    startFleetAgent(dir, bin, { host: 'sim-a', groups });
    startFleetAgent(dir, bin, { host: 'sim-b', groups });
    await Promise.all([online('sim-a'), online('sim-b')]);
    const done = groups.flatMap((g) => [final('sim-a', `${g}-a`, 30_000), final('sim-b', `${g}-b`, 30_000)]);
    // Both requests of a group leave in one burst, so they reach the two agents within a millisecond or two.
    await Promise.all(
      groups.flatMap((g) => [
        send('sim-a', `restart_dns_${g}`, `${g}-a`),
        send('sim-b', `restart_dns_${g}`, `${g}-b`),
      ]),
    );
    const results = await Promise.all(done);
    expect(results.map((r) => r.status)).toEqual(results.map(() => 'succeeded'));
    const gaps: number[] = [];
    for (const g of groups) {
      const rs = runs(dir).filter((r) => r.group === g);
      expect(rs.map((r) => r.host).sort()).toEqual(['sim-a', 'sim-b']);
      gaps.push(expectSpaced(g, dir, 2000).recorded);
    }
    process.stderr.write(
      `stagger simultaneous (20 pairs): gaps between recorded starts ms min ${Math.min(...gaps)} max ${Math.max(...gaps)} — ${gaps.join(' ')}\n`,
    );
  }, 60_000);
});

describe('the claim protocol, step by step (a peer played by the test)', () => {
  it('the claim the broker took first wins, whatever the clocks say: a rival that overtook our claim on a slow link stops the run; the agent claims again once it is retracted', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    // tie-b's uplink is held from its claim on, so a rival published later reaches the broker first.
    const proxy = new FaultProxy(port);
    await proxy.start();
    try {
      startFleetAgent(dir, bin, {
        host: 'tie-b',
        groups: ['tie'],
        stagger: { settle: '1s' },
        url: proxy.url,
      });
      await online('tie-b');
      const done = final('tie-b', 'tie-1');
      const link = proxy.holdUplink('stagger/tie/claim/tie-b');
      await send('tie-b', 'restart_dns_tie', 'tie-1');
      await withDeadline(link.held, 10_000, "tie-b's claim to leave it");
      // A member "tie-a" claims now, with a clock later than tie-b's claim: by the claims' times tie-b
      // would win, but the broker took tie-a's first, and so does every member (docs/stagger.md step 8).
      await ctl.pub('homelab/_fleet/stagger/tie/member/tie-a', JSON.stringify({ host: 'tie-a' }), {
        retain: true,
      });
      await ctl.pub(
        'homelab/_fleet/stagger/tie/claim/tie-a',
        JSON.stringify({
          host: 'tie-a',
          action: 'restart_dns_tie',
          id: 'rival-1',
          at: new Date(Date.now() + 500).toISOString(),
        }),
        { retain: true },
      );
      const retracted = ctl.next(
        (m) => m.topic === 'homelab/_fleet/stagger/tie/claim/tie-b' && m.text === '',
        20_000,
        'B to retract its claim',
      );
      link.release();
      await retracted;
      // Had B won, its group record would have been published before the retraction.
      expect(ctl.on('homelab/_fleet/stagger/tie/last/tie-b').filter((m) => m.text !== '')).toEqual([]);
      expect(starts(dir)).toEqual([]);
      // The rival gives up without running: B may go.
      const retractAt = Date.now();
      await ctl.pub('homelab/_fleet/stagger/tie/claim/tie-a', '', { retain: true });
      expect((await done).status).toBe('succeeded');
      expect(runs(dir)[0]!.start).toBeGreaterThanOrEqual(retractAt);
    } finally {
      await proxy.stop();
    }
  });

  it('a run of the group that starts during the settle window (re-read) reschedules the claim after it', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    startFleetAgent(dir, bin, {
      host: 'rr-b',
      groups: ['reread'],
      stagger: { settle: '1s', interval: '4s' },
    });
    await online('rr-b');
    const claimed = ctl.next(
      (m) => m.topic === 'homelab/_fleet/stagger/reread/claim/rr-b' && m.text !== '',
      10_000,
      "B's claim",
    );
    const sched = scheduled('rr-b', 'rr-1');
    const done = final('rr-b', 'rr-1');
    await send('rr-b', 'restart_dns_reread', 'rr-1');
    await claimed.catch((e: unknown) => {
      throw new Error(`${String(e)}\n${procs.at(-1)?.output()}`);
    });
    const at = new Date().toISOString();
    await ctl.pub('homelab/_fleet/stagger/reread/member/rr-a', JSON.stringify({ host: 'rr-a' }), {
      retain: true,
    });
    await ctl.pub(
      'homelab/_fleet/stagger/reread/last/rr-a',
      JSON.stringify({ host: 'rr-a', action: 'restart_dns_reread', id: 'other-1', at }),
      { retain: true },
    );
    expect(Date.parse((await sched).run_at!)).toBeGreaterThanOrEqual(Date.parse(at) + 4000 - 50);
    expect((await done).status).toBe('succeeded');
    expect(runs(dir)[0]!.start).toBeGreaterThanOrEqual(Date.parse(at) + 4000);
  });
});

describe('durability and outages', () => {
  it('a scheduled run survives an agent restart and runs at its time, with its final result on the same id', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    startFleetAgent(dir, bin, { host: 'dur-a', groups: ['dur'], stagger: { interval: '4s' } });
    const b = startFleetAgent(dir, bin, { host: 'dur-b', groups: ['dur'], stagger: { interval: '4s' } });
    await Promise.all([online('dur-a'), online('dur-b')]);
    const aDone = final('dur-a', 'dur-1');
    await send('dur-a', 'restart_dns_dur', 'dur-1');
    await aDone;
    const bSched = scheduled('dur-b', 'dur-2');
    await send('dur-b', 'restart_dns_dur', 'dur-2');
    const s = await bSched;
    b.proc.proc.kill('SIGTERM');
    expect((await withDeadline(b.proc.exited, 10_000, 'B to stop')).code).toBe(0);
    const bDone = final('dur-b', 'dur-2');
    startFleetAgent(dir, bin, {
      host: 'dur-b',
      groups: ['dur'],
      stagger: { interval: '4s' },
      stateDir: b.stateDir,
    });
    const r = await bDone;
    expect(r.status).toBe('succeeded');
    expect(runs(dir).map((x) => x.host)).toEqual(['dur-a', 'dur-b']);
    expectSpaced('dur', dir, 4000);
    expect(recordedStarts('dur')[1]!.at).toBeGreaterThanOrEqual(Date.parse(s.run_at!));
  });

  it('three members and a broker restart: the host that ran puts its record back, and the next run still waits', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    for (const host of ['tri-a', 'tri-b', 'tri-c'])
      startFleetAgent(dir, bin, { host, groups: ['tri'], stagger: { interval: '5s' } });
    await Promise.all([online('tri-a'), online('tri-b'), online('tri-c')]);
    const aDone = final('tri-a', 'tri-1');
    await send('tri-a', 'restart_dns_tri', 'tri-1');
    expect((await aDone).status).toBe('succeeded');
    const before = JSON.parse(ctl.on('homelab/_fleet/stagger/tri/last/tri-a').at(-1)!.text) as { at: string };

    // The broker restarts and forgets every retained message.
    await ctl.end();
    await broker.close();
    broker = await startEmbedded();
    ctl = await TestClient.connect(`mqtt://127.0.0.1:${port}`);
    await ctl.sub('homelab/+/result/#', 'homelab/+/status', 'homelab/_fleet/#');
    const back = await ctl.wait(
      (m) => m.topic === 'homelab/_fleet/stagger/tri/last/tri-a' && m.text !== '',
      15_000,
      "tri-a's own record put back",
    );
    expect(JSON.parse(back.text)).toMatchObject({ host: 'tri-a', at: before.at });

    await Promise.all([online('tri-b'), online('tri-c')]);
    const cSched = scheduled('tri-c', 'tri-2');
    const cDone = final('tri-c', 'tri-2');
    await send('tri-c', 'restart_dns_tri', 'tri-2');
    expect(Date.parse((await cSched).run_at!)).toBeGreaterThanOrEqual(Date.parse(before.at) + 5000 - 50);
    expect((await cDone).status).toBe('succeeded');
    const [r1, r2] = runs(dir);
    expect(r2!.start - r1!.start).toBeGreaterThanOrEqual(5000 - 100);
    expect(Date.parse((await cDone).executed_at!) - Date.parse(before.at)).toBeGreaterThanOrEqual(5000);
  });

  it("with the broker gone at run time, a scheduled run decides on the host's own record and says so", async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    startFleetAgent(dir, bin, { host: 'out-a', groups: ['out'], stagger: { interval: '3s' } });
    startFleetAgent(dir, bin, { host: 'out-b', groups: ['out'], stagger: { interval: '3s' } });
    await Promise.all([online('out-a'), online('out-b')]);
    const aDone = final('out-a', 'out-1');
    await send('out-a', 'restart_dns_out', 'out-1');
    await aDone;
    const bSched = scheduled('out-b', 'out-2');
    await send('out-b', 'restart_dns_out', 'out-2');
    await bSched;
    const aStart = recordedStarts('out')[0]!.at;
    // The broker goes away before B's turn, and comes back only after B ran.
    await ctl.end();
    await broker.close();
    await until(() => runs(dir).length === 2, 15_000, 'B to run during the outage');
    broker = await startEmbedded();
    ctl = await TestClient.connect(`mqtt://127.0.0.1:${port}`);
    await ctl.sub('homelab/+/result/#', 'homelab/+/status', 'homelab/_fleet/#');
    const r = await ctl.waitJson<Result>(
      'homelab/out-b/result/out-2',
      (x) => FINAL.includes(x.status),
      20_000,
    );
    expect(r.status).toBe('succeeded');
    expect(r.note).toMatch(/broker was unreachable: decided on this host's own record/);
    // The client that saw A's record is gone with the old broker: B's side is its own start time.
    expect(Date.parse(r.executed_at!) - aStart).toBeGreaterThanOrEqual(3000);
    const [r1, r2] = runs(dir);
    expect(r2!.start).toBeGreaterThanOrEqual(r1!.end);
    expect(r2!.start - r1!.start).toBeGreaterThanOrEqual(3000 - 100);
  });
});

describe('health gate', () => {
  it('require_peers_online holds the run while a member is offline, with the reason; it runs once the peer is back', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    const c = startFleetAgent(dir, bin, {
      host: 'gate-c',
      groups: ['gate'],
      stagger: { require_peers_online: true },
    });
    startFleetAgent(dir, bin, { host: 'gate-a', groups: ['gate'], stagger: { require_peers_online: true } });
    await Promise.all([online('gate-a'), online('gate-c')]);
    await ctl.wait((m) => m.topic === 'homelab/_fleet/stagger/gate/member/gate-c');
    c.proc.proc.kill('SIGTERM');
    await c.proc.exited;
    const held = scheduled('gate-a', 'gate-1');
    const done = final('gate-a', 'gate-1');
    await send('gate-a', 'restart_dns_gate', 'gate-1');
    const s = await held;
    expect(s.error).toMatch(/waiting for gate-c .* to be online/);
    expect(starts(dir)).toEqual([]);
    startFleetAgent(dir, bin, {
      host: 'gate-c',
      groups: ['gate'],
      stagger: { require_peers_online: true },
      stateDir: c.stateDir,
    });
    expect((await done).status).toBe('succeeded');
  });

  it('max_wait turns a held request into rejected / expired', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    const c = startFleetAgent(dir, bin, {
      host: 'mw-c',
      groups: ['mw'],
      stagger: { require_peers_online: true, max_wait: '1s' },
    });
    startFleetAgent(dir, bin, {
      host: 'mw-a',
      groups: ['mw'],
      stagger: { require_peers_online: true, max_wait: '1s' },
    });
    await Promise.all([online('mw-a'), online('mw-c')]);
    await ctl.wait((m) => m.topic === 'homelab/_fleet/stagger/mw/member/mw-c');
    c.proc.proc.kill('SIGKILL');
    await ctl.next((m) => m.topic === 'homelab/mw-c/status' && m.text === 'offline');
    const done = final('mw-a', 'mw-1');
    await send('mw-a', 'restart_dns_mw', 'mw-1');
    const r = await done;
    expect(r).toMatchObject({ status: 'rejected', error_code: 'expired' });
    expect(r.error).toMatch(/max_wait/);
    expect(starts(dir)).toEqual([]);
  });

  it('a failing health check fails the run and holds the group: the next member waits, with the reason', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    const health = { argv: ['false'], retries: 2, delay: '100ms', timeout: '2s' };
    startFleetAgent(dir, bin, { host: 'hc-a', groups: ['hc'], stagger: { interval: '1s', health } });
    startFleetAgent(dir, bin, { host: 'hc-b', groups: ['hc'], stagger: { interval: '1s', health } });
    await Promise.all([online('hc-a'), online('hc-b')]);
    const aDone = final('hc-a', 'hc-1');
    await send('hc-a', 'restart_dns_hc', 'hc-1');
    const a = await aDone;
    expect(a).toMatchObject({ status: 'failed', health: { passed: false, attempts: 2 } });
    expect(a.error).toMatch(/health check failed/);
    const bSched = scheduled('hc-b', 'hc-2');
    await send('hc-b', 'restart_dns_hc', 'hc-2');
    expect((await bSched).error).toMatch(
      /the group is held: the run of restart_dns_hc on hc-a .* has not passed its health check/,
    );
    expect(starts(dir)).toEqual(['hc-a']);
  });
});

describe('poisoned fleet records (docs/stagger.md § Failure cases)', () => {
  it('a record dated 2999 blocks nobody: not obeyed, not saved, not republished after a broker restart', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    const FUTURE = '2999-01-01T00:00:00.000Z';
    const poison = (host: string) =>
      JSON.stringify({ host, action: 'restart_dns_p29', id: 'poison-1', at: FUTURE });
    // Retained before the agents start, where every layout would read it: the shared group topic of
    // the previous layout, a member's own record topic, and a stranger's.
    await ctl.pub('homelab/_fleet/stagger/p29', poison('p29-b'), { retain: true });
    await ctl.pub('homelab/_fleet/stagger/p29/member/evil', JSON.stringify({ host: 'evil' }), {
      retain: true,
    });
    await ctl.pub('homelab/_fleet/stagger/p29/last/evil', poison('evil'), { retain: true });
    await ctl.pub('homelab/_fleet/stagger/p29/last/p29-b', poison('p29-b'), { retain: true });
    const a = startFleetAgent(dir, bin, { host: 'p29-a', groups: ['p29'], stagger: { interval: '3s' } });
    startFleetAgent(dir, bin, { host: 'p29-b', groups: ['p29'], stagger: { interval: '3s' } });
    await Promise.all([online('p29-a'), online('p29-b')]);
    const aDone = final('p29-a', 'p29-1');
    await send('p29-a', 'restart_dns_p29', 'p29-1');
    expect((await aDone).status).toBe('succeeded');
    expect(readFileSync(path.join(a.stateDir, 'stagger.json'), 'utf8')).not.toContain('2999');

    // The broker restarts and forgets everything: what the agents put back is theirs, and true.
    await ctl.end();
    await broker.close();
    broker = await startEmbedded();
    ctl = await TestClient.connect(`mqtt://127.0.0.1:${port}`);
    await ctl.sub('homelab/+/result/#', 'homelab/+/status', 'homelab/_fleet/#');
    await ctl.wait(
      (m) => m.topic.startsWith('homelab/_fleet/stagger/p29/last/') && m.text.includes('"p29-1"'),
      15_000,
      "a's own record put back",
    );
    // b is next: spaced after a's run by the interval, as always.
    const bSched = scheduled('p29-b', 'p29-2');
    const bDone = final('p29-b', 'p29-2');
    await send('p29-b', 'restart_dns_p29', 'p29-2');
    await bSched;
    expect((await bDone).status).toBe('succeeded');
    expect(ctl.messages.filter((m) => m.text.includes('2999'))).toEqual([]);
    const [r1, r2] = runs(dir);
    expect(r2!.start - r1!.start).toBeGreaterThanOrEqual(3000 - 100);
  });

  it('a held record whose holder is gone lapses after max_hold, and the run says why', async () => {
    const dir = tempDir();
    const bin = fakePihole(dir);
    const at = new Date(Date.now() - 60_000).toISOString();
    // A member that failed its health check a minute ago and has been offline since.
    await ctl.pub('homelab/_fleet/stagger/dh/member/dh-gone', JSON.stringify({ host: 'dh-gone' }), {
      retain: true,
    });
    await ctl.pub('homelab/dh-gone/status', 'offline', { retain: true });
    await ctl.pub(
      'homelab/_fleet/stagger/dh/last/dh-gone',
      JSON.stringify({ host: 'dh-gone', action: 'restart_dns_dh', id: 'held-1', at, released: false }),
      { retain: true },
    );
    startFleetAgent(dir, bin, { host: 'dh-a', groups: ['dh'], stagger: { max_hold: '2s' } });
    await online('dh-a');
    const sched = scheduled('dh-a', 'dh-1');
    const done = final('dh-a', 'dh-1');
    await send('dh-a', 'restart_dns_dh', 'dh-1');
    expect((await sched).error).toMatch(/held: the run of restart_dns_dh on dh-gone/);
    const r = await done;
    expect(r.status).toBe('succeeded');
    expect(r.note).toMatch(/dh-gone has not been online for \d+ s \(more than stagger.max_hold, 2 s\)/);
  });
});
