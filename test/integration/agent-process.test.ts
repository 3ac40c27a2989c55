/**
 * A real `homelab-cmd agent` process: what survives a crash, what its memory
 * does under a flood of output, and how it talks to a broker that refuses MQTT 5.
 */
import net from 'node:net';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningBroker } from '../../src/broker/broker.js';
import { spawnCli } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort } from '../helpers/net.js';
import { until, withDeadline } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

let broker: RunningBroker;
let url: string;
let ctl: TestClient;
beforeAll(async () => {
  broker = await startTestBroker();
  url = `mqtt://127.0.0.1:${broker.port}`;
  ctl = await TestClient.connect(url);
  await ctl.sub('homelab/+/status', 'homelab/+/result/#');
});
afterAll(async () => {
  await ctl.end();
  await broker.close();
});

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

describe('crash mid-run', () => {
  it('after SIGKILL during a run, the restarted agent reports that id interrupted and never re-runs it', async () => {
    const host = 'proc-crash';
    const dir = tempDir();
    const bin = fakeBin(dir, 'pihole', `while [ ! -f "${dir}/never" ]; do sleep 0.05; done`);
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url },
      execution: { enabled: true, path: testPath(bin) },
      actions: { restart_dns: { argv: ['pihole', 'restartdns'] } },
    });
    const first = spawnCli(['agent', '--config', file]);
    await ctl.wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online');
    await ctl.pub(`homelab/${host}/cmd/restart_dns`, JSON.stringify({ id: 'crash-1' }));
    await ctl.waitJson(`homelab/${host}/result/crash-1`, (r: { status: string }) => r.status === 'running');
    await until(() => calls(dir).length === 1, 5000, 'the command to start');
    first.proc.kill('SIGKILL');
    await first.exited;

    const interrupted = ctl.next(
      (m) => m.topic === `homelab/${host}/result/crash-1` && m.text.includes('"interrupted"'),
      10_000,
      'interrupted result',
    );
    const second = spawnCli(['agent', '--config', file]);
    const r = JSON.parse((await interrupted).text);
    expect(r).toMatchObject({
      id: 'crash-1',
      status: 'interrupted',
      error_code: 'interrupted',
      exit_code: -1,
    });
    expect(r.executed_at).toBeDefined();
    // Sending the id again gets the stored result; the command ran exactly once.
    const again = ctl.next((m) => m.topic === `homelab/${host}/result/crash-1`, 10_000, 'the stored result');
    await ctl.pub(`homelab/${host}/cmd/restart_dns`, JSON.stringify({ id: 'crash-1' }));
    expect(JSON.parse((await again).text).status).toBe('interrupted');
    expect(calls(dir)).toEqual(['pihole restartdns']);
    writeFileSync(`${dir}/never`, ''); // let the orphaned command of the killed agent end
    second.proc.kill('SIGTERM');
    expect((await withDeadline(second.exited, 15_000, 'agent exit')).code).toBe(0);
  });
});

describe('private working directories made ahead (src/exec/work-dirs.ts)', () => {
  it('each command gets a new empty one, whatever the last left in its own; none is left after a stop', async () => {
    const host = 'proc-workdirs';
    const dir = tempDir();
    const tmp = `${dir}/tmp`;
    mkdirSync(tmp);
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url },
      heartbeat: { interval: '1h' },
      discovery: { enabled: false },
      execution: { enabled: true },
      actions: { leave: { argv: ['sh', '-c', 'pwd; ls -A; echo x > left'] } },
    });
    // Its own temp dir, so what the agent makes there (and leaves) is all that is in it.
    const agent = spawnCli(['agent', '--config', file], { TMPDIR: tmp });
    await ctl.wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online');
    const seen: string[][] = [];
    for (const id of ['wd-1', 'wd-2', 'wd-3']) {
      const done = ctl.next(
        (m) => m.topic === `homelab/${host}/result/${id}` && m.text.includes('succeeded'),
      );
      await ctl.pub(`homelab/${host}/cmd/leave`, JSON.stringify({ id }));
      seen.push((JSON.parse((await done).text) as { stdout: string }).stdout.trim().split('\n'));
    }
    // pwd alone: nothing of the command before, in a directory of the agent's temp dir never used before.
    for (const lines of seen)
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^${tmp}/homelab-cmd-`))]);
    expect(new Set(seen.map((l) => l[0])).size).toBe(3);
    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    await until(
      () => readdirSync(tmp).length === 0,
      5000,
      `the temp dir emptied, not ${readdirSync(tmp).join(' ')}`,
    );
  });
});

describe('memory under a flood of output', () => {
  // 1 MB (the case) must stay within a few MB. 200 MB proves the cap holds while reading: buffering it
  // would add >= 200 MB; what remains is garbage the GC has not returned yet, and it plateaus (40 MB measured).
  it.each([
    ['1 MB', 1_000_000, 8],
    ['200 MB', 200_000_000, 64],
  ])('%s of stdout is capped while reading: RSS stays bounded', async (label, bytes, limitMb) => {
    const host = `proc-rss-${bytes}`;
    const dir = tempDir();
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url },
      execution: { enabled: true },
      actions: {
        small: { argv: ['true'] },
        flood: { argv: ['sh', '-c', `head -c ${bytes} /dev/zero | tr "\\0" x`], timeout: '60s' },
      },
    });
    const agent = spawnCli(['agent', '--config', file]);
    await ctl.wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online');
    // Warm up the code paths first, so the baseline is the idle size of a working agent.
    for (const id of ['warm-1', 'warm-2']) {
      const done = ctl.next(
        (m) => m.topic === `homelab/${host}/result/${id}` && m.text.includes('succeeded'),
      );
      await ctl.pub(`homelab/${host}/cmd/small`, JSON.stringify({ id }));
      await done;
    }
    const idle = rssKb(agent.proc.pid!);
    let peak = idle;
    const done = ctl.next(
      (m) => m.topic === `homelab/${host}/result/flood-1` && m.text.includes('succeeded'),
      60_000,
      'flood result',
    );
    await ctl.pub(`homelab/${host}/cmd/flood`, JSON.stringify({ id: 'flood-1' }));
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(agent.proc.pid!))), 50);
    const r = JSON.parse((await done).text);
    clearInterval(sampler);
    expect(r.stdout_truncated).toBe(true);
    expect(Buffer.byteLength(r.stdout)).toBe(10_000);
    const growthMb = (peak - idle) / 1024;
    process.stderr.write(
      `RSS idle ${Math.round(idle / 1024)} MB, peak during ${label} of output ${Math.round(peak / 1024)} MB (+${growthMb.toFixed(1)} MB)\n`,
    );
    expect(growthMb).toBeLessThan(limitMb);
    agent.proc.kill('SIGTERM');
    await agent.exited;
  });
});

describe('a broker that refuses MQTT 5', () => {
  it('falls back to MQTT 3.1.1, logs it once, and works', async () => {
    // A front that answers a v5 CONNECT with CONNACK 0x84 (Unsupported Protocol Version) and passes 3.1.1 through.
    const front = net.createServer((client) => {
      client.once('data', (first) => {
        // Fixed header, remaining length (1 byte for a small CONNECT), then "\0\4MQTT" and the protocol level.
        const level = first[8];
        if (level === 5) {
          client.end(Buffer.from([0x20, 0x03, 0x00, 0x84, 0x00]));
          return;
        }
        const upstream = net.connect(broker.port, '127.0.0.1', () => {
          upstream.write(first);
          client.pipe(upstream).pipe(client);
        });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => front.listen(port, '127.0.0.1', resolve));
    const host = 'proc-v311';
    const dir = tempDir();
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: `mqtt://127.0.0.1:${port}` },
      execution: { enabled: true },
      actions: { ok: { argv: ['echo', 'fine'] } },
    });
    const agent = spawnCli(['agent', '--config', file]);
    await ctl.wait(
      (m) => m.topic === `homelab/${host}/status` && m.text === 'online',
      10_000,
      'online over 3.1.1',
    );
    const done = ctl.next((m) => m.topic === `homelab/${host}/result/v3-1` && m.text.includes('succeeded'));
    await ctl.pub(`homelab/${host}/cmd/ok`, JSON.stringify({ id: 'v3-1' }));
    expect(JSON.parse((await done).text).stdout).toBe('fine\n');
    const log = agent.output();
    expect(log.match(/falling back to MQTT 3\.1\.1/g)).toHaveLength(1);
    agent.proc.kill('SIGTERM');
    await agent.exited;
    await new Promise<void>((resolve) => front.close(() => resolve()));
  });
});
