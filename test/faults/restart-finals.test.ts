/**
 * One final answer per id across a crash (docs/operations.md § After a crash): `interrupted` reaches the
 * MQTT 5 response topic the request named, means the command was stopped, and is never published over
 * a final result the journal could not record (a full state_dir, a real 64 KiB tmpfs as in
 * full-state-dir.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

let broker: RunningBroker;
let ctl: TestClient;
const procs: AgentProcess[] = [];
const mounts: string[] = [];
const leftovers: number[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  ctl = await TestClient.connect(`mqtt://127.0.0.1:${broker.port}`);
  await ctl.sub('homelab/+/result/#', 'homelab/+/status', 'homelab/+/reply/#');
});
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  }
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already: what the fix is for.
    }
  }
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
});
afterAll(async () => {
  await ctl.end();
  await broker.close();
});

function agent(
  host: string,
  dir: string,
  state: string,
  actions: Record<string, unknown>,
  url = `mqtt://127.0.0.1:${broker.port}`,
): AgentProcess {
  const file = writeConfig(dir, {
    host,
    state_dir: state,
    mqtt: { url, keepalive: '1s' },
    heartbeat: { interval: '1s' },
    execution: { enabled: true, path: testPath(`${dir}/bin`) },
    actions,
  });
  const a = spawnCli(['agent', '--config', file]);
  procs.push(a);
  return a;
}

const online = (host: string, from: number, a: AgentProcess) =>
  ctl
    .wait(
      (m) => ctl.messages.indexOf(m) >= from && m.topic === `homelab/${host}/status` && m.text === 'online',
      20_000,
      `${host} online`,
    )
    .catch((e: unknown) => Promise.reject(new Error(`${String(e)}\n${a.output()}`)));

/** Alive means in /proc and not a zombie (PID 1 here does not reap orphans). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const statuses = (host: string, id: string) =>
  ctl
    .on(`homelab/${host}/result/${id}`)
    .filter((m) => m.text !== '')
    .map((m) => (JSON.parse(m.text) as Result).status);

describe('after an agent SIGKILL', () => {
  it('the restarted agent stops what is left of the command, then says interrupted on the id topic and the response topic, with the correlation data', async () => {
    const host = 'rf-crash';
    const dir = tempDir();
    // A command that outlives the agent: a shell in its own group, with a child sleeping in it.
    fakeBin(dir, 'slow', `sleep 300 & echo $! > "${dir}/sleep.pid"; wait`);
    const actions = { slow: { argv: ['slow'] } };
    const first = agent(host, dir, `${dir}/state`, actions);
    await online(host, 0, first);
    await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'rf-1' }), {
      properties: { responseTopic: `homelab/${host}/reply/me`, correlationData: Buffer.from('corr-rf-1') },
    });
    await until(
      () => existsSync(`${dir}/sleep.pid`) && readFileSync(`${dir}/sleep.pid`, 'utf8').endsWith('\n'),
      15_000,
      'the command to start',
    );
    const sleeper = Number(readFileSync(`${dir}/sleep.pid`, 'utf8'));
    leftovers.push(sleeper);
    // Its running record names its process group, written just after the spawn returns (the script may be quicker).
    await until(
      () => readFileSync(`${dir}/state/journal.jsonl`, 'utf8').includes('"pgid"'),
      15_000,
      'the process group in the journal',
    );
    first.proc.kill('SIGKILL');
    await first.exited;
    expect(alive(sleeper)).toBe(true);

    const reply = ctl.next((m) => m.topic === `homelab/${host}/reply/me`, 20_000, 'the reply');
    const second = agent(host, dir, `${dir}/state`, actions);
    const m = await reply.catch((e: unknown) =>
      Promise.reject(new Error(`${String(e)}\n${second.output()}`)),
    );
    const r = JSON.parse(m.text) as Result;
    expect(r).toMatchObject({ id: 'rf-1', host, status: 'interrupted', error_code: 'interrupted' });
    expect(m.packet.properties?.correlationData?.toString()).toBe('corr-rf-1');
    expect(r.error).toMatch(/was stopped at restart/);
    expect(alive(sleeper)).toBe(false);
    expect(statuses(host, 'rf-1').filter((s) => s === 'interrupted')).toHaveLength(1);
    expect(calls(dir)).toEqual(['slow ']);
    second.proc.kill('SIGTERM');
    expect((await withDeadline(second.exited, 15_000, 'agent exit')).code).toBe(0);
  }, 120_000);
});

describe('the spawn gap: an agent that died between the spawn and the record of its process group', () => {
  it('cannot stop that command, and its interrupted says so — never that nothing had started', async () => {
    // The gap (docs/operations.md § After a crash) is a few instructions wide: no test can land a SIGKILL
    // in it, so the journal it leaves is written here — the run started (executed_at), no process group.
    const host = 'rf-gap';
    const dir = tempDir();
    mkdirSync(`${dir}/state`, { recursive: true, mode: 0o700 });
    const running = {
      id: 'rf-gap-1',
      host,
      action: 'slow',
      status: 'running',
      exit_code: -1,
      stdout: '',
      stderr: '',
      stdout_truncated: false,
      stderr_truncated: false,
      executed_at: new Date().toISOString(),
    };
    const queued = { ...running, id: 'rf-gap-2' } as Partial<typeof running>;
    delete queued.executed_at;
    writeFileSync(
      `${dir}/state/journal.jsonl`,
      [running, queued].map((r) => JSON.stringify({ id: r.id, result: r })).join('\n') + '\n',
      { mode: 0o600 },
    );
    fakeBin(dir, 'slow');
    const a = agent(host, dir, `${dir}/state`, { slow: { argv: ['slow'] } });
    await online(host, 0, a);
    const final = async (id: string) =>
      JSON.parse(
        (
          await ctl.wait(
            (m) => m.topic === `homelab/${host}/result/${id}` && m.text.includes('interrupted'),
            20_000,
            `${id} interrupted`,
          )
        ).text,
      ) as Result;
    expect((await final('rf-gap-1')).error).toMatch(
      /before its process group was recorded.*it may still be running/,
    );
    expect((await final('rf-gap-2')).error).toMatch(/no process of it had been started/);
  }, 60_000);
});

describe('a final result the full state_dir could not record', () => {
  it('a re-sent id is answered with it, not running, and the restart never publishes interrupted over it', async () => {
    const host = 'rf-full';
    const dir = tempDir();
    const gate = path.join(dir, 'gate');
    // Its result is longer than a page: its journal line cannot fit in the slack of the file's last page.
    fakeBin(
      dir,
      'slow',
      `while [ ! -f "${gate}" ]; do sleep 0.02; done; head -c 6000 /dev/zero | tr '\\0' x; echo finished`,
    );
    const state = path.join(dir, 'state');
    mkdirSync(state);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', state]);
    } catch {
      process.stderr.write(
        '\n*** SKIPPED: lost final result test — cannot mount a small tmpfs here (needs root) ***\n\n',
      );
      return;
    }
    mounts.push(state);
    const actions = { slow: { argv: ['slow'] } };
    const first = agent(host, dir, state, actions);
    await online(host, 0, first);
    await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'rf-2' }));
    await until(() => calls(dir).length === 1, 15_000, 'the command to start');
    await until(
      () => readFileSync(`${state}/journal.jsonl`, 'utf8').includes('"executed_at"'),
      15_000,
      'the running record',
    );
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${state}/filler`, 'bs=4k', 'count=100'], { stdio: 'ignore' });
    } catch {
      // dd stops with "No space left on device": that is the point.
    }
    execFileSync('touch', [gate]);
    await ctl.waitJson<Result>(`homelab/${host}/result/rf-2`, (r) => r.status === 'succeeded', 15_000);
    expect(readFileSync(`${state}/journal.jsonl`, 'utf8')).not.toContain('finished');

    const mark = ctl.messages.length;
    const again = ctl.next(
      (m) => ctl.messages.indexOf(m) >= mark && m.topic === `homelab/${host}/result/rf-2` && m.text !== '',
      15_000,
      'the answer to the re-sent id',
    );
    await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'rf-2' }));
    expect((JSON.parse((await again).text) as Result).status).toBe('succeeded');

    first.proc.kill('SIGKILL');
    await first.exited;
    execFileSync('rm', [`${state}/filler`]);
    const restart = ctl.messages.length;
    // Re-sent while the agent is down: its session holds it, delivered as it connects — before the
    // restart has read the retained result, which the journaled `running` must not replace.
    await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'rf-2' }), {
      properties: { responseTopic: `homelab/${host}/reply/me`, correlationData: Buffer.from('corr-rf-2') },
    });
    const reply = ctl.next((m) => m.topic === `homelab/${host}/reply/me`, 20_000, 'the reply to the re-send');
    const second = agent(host, dir, state, actions);
    await online(host, restart, second);
    // The restart settles the id either way: adopts the published result, or (the old way) says interrupted.
    await until(
      () => statuses(host, 'rf-2').includes('interrupted') || second.output().includes('adopted'),
      20_000,
      'the restart to settle rf-2',
    );
    expect(statuses(host, 'rf-2')).not.toContain('interrupted');
    const answered = await reply;
    expect(JSON.parse(answered.text)).toMatchObject({ id: 'rf-2', status: 'succeeded' });
    expect(answered.packet.properties?.correlationData?.toString()).toBe('corr-rf-2');
    const afterRestart = ctl.messages
      .slice(restart)
      .filter((m) => m.topic === `homelab/${host}/result/rf-2` && m.text !== '')
      .map((m) => (JSON.parse(m.text) as Result).status);
    expect(afterRestart).not.toContain('running');
    const stored = ctl.next(
      (m) => m.topic === `homelab/${host}/result/rf-2` && m.text !== '',
      15_000,
      'the stored result',
    );
    await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'rf-2' }));
    expect((JSON.parse((await stored).text) as Result).status).toBe('succeeded');
    expect(statuses(host, 'rf-2')).not.toContain('interrupted');
    expect(calls(dir)).toEqual(['slow ']);
    second.proc.kill('SIGTERM');
    expect((await withDeadline(second.exited, 15_000, 'agent exit')).code).toBe(0);
  }, 120_000);
});

describe('a final result the broker never acknowledged (the outbox)', () => {
  it('is published after a restart to the response topic too, with its correlation data', async () => {
    const host = 'rf-outbox';
    const dir = tempDir();
    const gate = path.join(dir, 'gate');
    fakeBin(dir, 'slow', `while [ ! -f "${gate}" ]; do sleep 0.02; done; echo finished`);
    const actions = { slow: { argv: ['slow'] } };
    const proxy = new FaultProxy(broker.port);
    await proxy.start();
    try {
      const first = agent(host, dir, `${dir}/state`, actions, proxy.url);
      await online(host, 0, first);
      await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'rf-3' }), {
        properties: { responseTopic: `homelab/${host}/reply/me`, correlationData: Buffer.from('corr-rf-3') },
      });
      await until(() => calls(dir).length === 1, 15_000, 'the command to start');
      // The link stalls: the final result goes into the void, never acknowledged.
      proxy.stallOpen();
      proxy.mode = 'refuse';
      execFileSync('touch', [gate]);
      await until(
        () => readFileSync(`${dir}/state/journal.jsonl`, 'utf8').includes('"finished\\n"'),
        15_000,
        'the final result in the journal',
      );
      expect(ctl.on(`homelab/${host}/reply/me`)).toHaveLength(0);
      first.proc.kill('SIGKILL');
      await first.exited;
      const reply = ctl.next((m) => m.topic === `homelab/${host}/reply/me`, 20_000, 'the reply');
      const second = agent(host, dir, `${dir}/state`, actions);
      const m = await reply.catch((e: unknown) =>
        Promise.reject(new Error(`${String(e)}\n${second.output()}`)),
      );
      expect(JSON.parse(m.text)).toMatchObject({ id: 'rf-3', status: 'succeeded', stdout: 'finished\n' });
      expect(m.packet.properties?.correlationData?.toString()).toBe('corr-rf-3');
      expect(calls(dir)).toHaveLength(1);
      second.proc.kill('SIGTERM');
      expect((await withDeadline(second.exited, 15_000, 'agent exit')).code).toBe(0);
    } finally {
      await proxy.stop();
    }
  }, 120_000);
});
