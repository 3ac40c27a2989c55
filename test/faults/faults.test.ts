/**
 * Fault injection: nothing lost, nothing run twice — through cut and
 * half-open connections, a stalled broker, results the broker never
 * acknowledged, a full state dir. The flood of 10,000 requests runs in the
 * fuzz lane (test/fuzz/flood.test.ts): minutes, not seconds.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningBroker } from '../../src/broker/broker.js';
import type { Result } from '../../src/core/result.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { FaultProxy } from '../helpers/proxy.js';
import { until, withDeadline } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

const FINAL = ['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted'];
let broker: RunningBroker;
let url: string;
let ctl: TestClient;
const procs: AgentProcess[] = [];
const proxies: FaultProxy[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  url = `mqtt://127.0.0.1:${broker.port}`;
  ctl = await TestClient.connect(url);
  await ctl.sub('homelab/+/result/#', 'homelab/+/status');
});
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  }
  for (const p of proxies.splice(0)) await p.stop();
});
afterAll(async () => {
  await ctl.end();
  await broker.close();
});

async function proxy(): Promise<FaultProxy> {
  const p = new FaultProxy(broker.port);
  await p.start();
  proxies.push(p);
  return p;
}

function agent(
  host: string,
  mqttUrl: string,
  dir: string,
  extra: Record<string, unknown> = {},
): AgentProcess {
  const file = writeConfig(
    dir,
    {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: mqttUrl, keepalive: '1s' },
      heartbeat: { interval: '1h' },
      execution: { enabled: true, path: testPath(`${dir}/bin`) },
      ...extra,
    },
    `${host}.yaml`,
  );
  const a = spawnCli(['agent', '--config', file]);
  procs.push(a);
  return a;
}

const onlineAfter = (host: string, index: number, ms = 15_000) =>
  ctl.wait(
    (m) => ctl.messages.indexOf(m) >= index && m.topic === `homelab/${host}/status` && m.text === 'online',
    ms,
    `${host} online`,
  );
const finals = (host: string, id: string) =>
  ctl
    .on(`homelab/${host}/result/${id}`)
    .filter((m) => m.text !== '' && FINAL.includes((JSON.parse(m.text) as Result).status));

describe('connection faults', () => {
  it('a half-open connection (no FIN, nothing answers) is noticed within the keepalive; the agent reconnects and ends online', async () => {
    const dir = tempDir();
    fakeBin(dir, 'true');
    const p = await proxy();
    const a = agent('fault-halfopen', p.url, dir);
    await onlineAfter('fault-halfopen', 0);
    const mark = ctl.messages.length;
    const t0 = Date.now();
    p.stallOpen();
    await until(() => p.accepted >= 2, 10_000, 'the agent to open a new connection');
    const noticedMs = Date.now() - t0;
    await onlineAfter('fault-halfopen', mark);
    // keepalive 1 s: MQTT.js gives up on a PINGRESP after about 1.5 keepalives, then backs off briefly.
    expect(noticedMs).toBeLessThan(5000);
    expect(a.output()).toMatch(/connection to broker lost; reconnecting/);
    // Whatever the will did meanwhile, the retained status ends online.
    const late = await TestClient.connect(url);
    await late.sub('homelab/fault-halfopen/status');
    await until(() => late.on('homelab/fault-halfopen/status').length > 0, 5000, 'retained status');
    expect(late.on('homelab/fault-halfopen/status').at(-1)!.text).toBe('online');
    await late.end();
    process.stderr.write(`half-open connection noticed and replaced after ${noticedMs} ms (keepalive 1 s)\n`);
  });

  it('commands published while the agent is cut off are delivered once each when it returns (persistent session)', async () => {
    const dir = tempDir();
    fakeBin(dir, 'pihole', 'echo ok');
    const p = await proxy();
    agent('fault-outage', p.url, dir, { actions: { restart_dns: { argv: ['pihole', 'restartdns'] } } });
    await onlineAfter('fault-outage', 0);
    p.mode = 'refuse';
    p.cut();
    // Wait until the broker has seen the agent go: its will says offline.
    await ctl.wait(
      (m) => m.topic === 'homelab/fault-outage/status' && m.text === 'offline',
      10_000,
      'the will',
    );
    const ids = ['o-1', 'o-2', 'o-3'];
    for (const id of ids) await ctl.pub('homelab/fault-outage/cmd/restart_dns', JSON.stringify({ id }));
    const mark = ctl.messages.length;
    p.mode = 'pass';
    await onlineAfter('fault-outage', mark);
    await until(
      () => ids.every((id) => finals('fault-outage', id).length > 0),
      15_000,
      'the queued commands to run',
    );
    expect(calls(dir)).toEqual(['pihole restartdns', 'pihole restartdns', 'pihole restartdns']);
    for (const id of ids) expect(finals('fault-outage', id)).toHaveLength(1);
  });

  it('a result the broker never acknowledged (outbox) is published after the agent is killed and restarted', async () => {
    const dir = tempDir();
    const gate = path.join(dir, 'gate');
    fakeBin(dir, 'slow', `while [ ! -f "${gate}" ]; do sleep 0.02; done; echo finished`);
    const p = await proxy();
    const first = agent('fault-outbox', p.url, dir, { actions: { slow: { argv: ['slow'] } } });
    await onlineAfter('fault-outbox', 0);
    await ctl.pub('homelab/fault-outbox/cmd/slow', JSON.stringify({ id: 'ob-1' }));
    await until(() => calls(dir).length === 1, 10_000, 'the command to start');
    // The link stalls: the result will be published into the void, never acknowledged.
    p.stallOpen();
    p.mode = 'refuse';
    writeFileSync(gate, '');
    const journal = `${dir}/state/journal.jsonl`;
    await until(
      () => readFileSync(journal, 'utf8').includes('"finished\\n"'),
      10_000,
      'the final result in the journal',
    );
    expect(finals('fault-outbox', 'ob-1')).toHaveLength(0);
    first.proc.kill('SIGKILL');
    await first.exited;
    // Restarted, straight at the broker: the outbox is published, and the command is not run again.
    const mark = ctl.messages.length;
    agent('fault-outbox', url, dir, { actions: { slow: { argv: ['slow'] } } });
    const r = await ctl.waitJson<Result>(
      'homelab/fault-outbox/result/ob-1',
      (x) => FINAL.includes(x.status),
      15_000,
    );
    expect(ctl.messages.indexOf(ctl.on('homelab/fault-outbox/result/ob-1').at(-1)!)).toBeGreaterThanOrEqual(
      mark,
    );
    expect(r).toMatchObject({ status: 'succeeded', stdout: 'finished\n' });
    expect(calls(dir)).toHaveLength(1);
  });
});

describe('state dir faults', () => {
  it('a full state_dir refuses new requests with a clear error instead of running them unjournaled, and recovers when space returns', async () => {
    const dir = tempDir();
    fakeBin(dir, 'pihole');
    const state = path.join(dir, 'state');
    mkdirSync(state);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', state]);
    } catch {
      process.stderr.write(
        '\n*** SKIPPED: full state_dir test — cannot mount a small tmpfs here (needs root) ***\n\n',
      );
      return;
    }
    try {
      const a = agent('fault-full', url, dir, {
        actions: { restart_dns: { argv: ['pihole', 'restartdns'] } },
      });
      await onlineAfter('fault-full', 0);
      // Fill what is left.
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${state}/filler`, 'bs=4k', 'count=100'], { stdio: 'ignore' });
      } catch {
        // dd stops with "No space left on device": that is the point.
      }
      const done = ctl.next((m) => m.topic === 'homelab/fault-full/result/full-1' && m.text !== '');
      await ctl.pub('homelab/fault-full/cmd/restart_dns', JSON.stringify({ id: 'full-1' }));
      const r = JSON.parse(
        (await done.catch((e: unknown) => Promise.reject(new Error(`${String(e)}\n${a.output()}`)))).text,
      ) as Result;
      expect(r).toMatchObject({ status: 'rejected', error_code: 'busy' });
      expect(r.error).toMatch(/cannot write its journal .*ENOSPC.* free space/);
      expect(calls(dir)).toEqual([]);
      expect(a.proc.exitCode).toBeNull(); // still running: never a crash loop
      execFileSync('rm', [`${state}/filler`]);
      const ok = ctl.next(
        (m) => m.topic === 'homelab/fault-full/result/full-1' && m.text.includes('succeeded'),
      );
      await ctl.pub('homelab/fault-full/cmd/restart_dns', JSON.stringify({ id: 'full-1' }));
      await ok;
      expect(calls(dir)).toEqual(['pihole restartdns']);
      a.proc.kill('SIGTERM');
      await withDeadline(a.exited, 10_000, 'agent exit');
    } finally {
      execFileSync('umount', ['-l', state]);
    }
  });
});
