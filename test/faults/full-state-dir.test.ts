/**
 * A full state_dir is a degraded mode, not a crash (docs/operations.md § The state directory): an agent
 * started on one starts, goes online, says `degraded` in its heartbeat, answers new requests `busy`
 * with the reason, leaves no temp file, and recovers by itself when space returns.
 * The state_dir is a real 64 KiB tmpfs, filled with dd, as in faults.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningBroker } from '../../src/broker/broker.js';
import type { Result } from '../../src/core/result.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { withDeadline } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

const HOST = 'fault-degraded';
let broker: RunningBroker;
let ctl: TestClient;
const procs: AgentProcess[] = [];
const mounts: string[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  ctl = await TestClient.connect(`mqtt://127.0.0.1:${broker.port}`);
  await ctl.sub(`homelab/${HOST}/#`);
});
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  }
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
});
afterAll(async () => {
  await ctl.end();
  await broker.close();
});

/** A 64 KiB tmpfs at `dir`, or undefined where mounting is impossible (not root). */
function smallTmpfs(dir: string): string | undefined {
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
  } catch {
    process.stderr.write(
      '\n*** SKIPPED: full state_dir test — cannot mount a small tmpfs here (needs root) ***\n\n',
    );
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

function fill(dir: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${dir}/filler`, 'bs=4k', 'count=100'], { stdio: 'ignore' });
  } catch {
    // dd stops with "No space left on device": that is the point.
  }
}

interface Heartbeat {
  ts: string;
  degraded?: string;
}

const heartbeatAfter = (index: number, pred: (h: Heartbeat) => boolean, what: string) =>
  ctl
    .wait(
      (m) =>
        ctl.messages.indexOf(m) >= index &&
        m.topic === `homelab/${HOST}/heartbeat` &&
        pred(JSON.parse(m.text) as Heartbeat),
      20_000,
      what,
    )
    .then((m) => JSON.parse(m.text) as Heartbeat);

async function request(id: string, a: AgentProcess): Promise<Result> {
  const done = ctl.next(
    (m) =>
      m.topic === `homelab/${HOST}/result/${id}` &&
      m.text !== '' &&
      !['running', 'scheduled'].includes((JSON.parse(m.text) as Result).status),
    20_000,
    `the result of ${id}`,
  );
  await ctl.pub(`homelab/${HOST}/cmd/restart_dns`, JSON.stringify({ id }));
  return JSON.parse(
    (await done.catch((e: unknown) => Promise.reject(new Error(`${String(e)}\n${a.output()}`)))).text,
  ) as Result;
}

describe('a full state_dir', () => {
  it('an agent started on it starts, goes online, says degraded, answers busy with the reason, leaves no temp file, and recovers when space returns', async () => {
    const dir = tempDir();
    fakeBin(dir, 'pihole');
    const state = smallTmpfs(path.join(dir, 'state'));
    if (!state) return;
    // What an earlier run leaves: a journal to compact at start, and a temp file of a write a crash cut short.
    const earlier: Result = {
      id: 'earlier-1',
      host: HOST,
      action: 'restart_dns',
      status: 'succeeded',
      exit_code: 0,
    } as Result;
    writeFileSync(`${state}/journal.jsonl`, `${JSON.stringify({ id: 'earlier-1', result: earlier })}\n`);
    // Empty: removing it must not free the page that would end the test's full disk.
    writeFileSync(`${state}/stats.json.tmp-4242`, '');
    fill(state);

    const file = writeConfig(dir, {
      host: HOST,
      state_dir: state,
      mqtt: { url: `mqtt://127.0.0.1:${broker.port}` },
      heartbeat: { interval: '1s' },
      execution: { enabled: true, path: testPath(`${dir}/bin`) },
      actions: { restart_dns: { argv: ['pihole', 'restartdns'] } },
    });
    const a = spawnCli(['agent', '--config', file]);
    procs.push(a);
    await ctl
      .wait((m) => m.topic === `homelab/${HOST}/status` && m.text === 'online', 20_000, `${HOST} online`)
      .catch((e: unknown) => Promise.reject(new Error(`${String(e)}\n${a.output()}`)));

    const degraded = await heartbeatAfter(0, (h) => h.degraded !== undefined, 'a degraded heartbeat').catch(
      (e: unknown) =>
        Promise.reject(
          new Error(
            `${String(e)}\n${ctl.messages.map((m) => `${m.topic} ${m.text.slice(0, 300)}`).join('\n')}\n${a.output()}`,
          ),
        ),
    );
    expect(degraded.degraded).toMatch(
      /^state_dir full: ENOSPC: no space left on device.* — refusing new requests until space returns$/,
    );
    expect(a.output()).toMatch(/state_dir .* is full: refusing new requests until space returns/);

    const refused = await request('full-1', a);
    expect(refused).toMatchObject({ status: 'rejected', error_code: 'busy' });
    expect(refused.error).toMatch(/cannot write its journal .*ENOSPC.* free space/);
    expect(calls(dir)).toEqual([]);
    expect(readdirSync(state).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(a.output()).toContain('removed a temp file a stopped agent left behind');
    expect(a.proc.exitCode).toBeNull();
    // A repeat of an id the earlier run finished still gets its stored result.
    const repeat = await request('earlier-1', a);
    expect(repeat).toMatchObject({ status: 'succeeded' });

    execFileSync('rm', [`${state}/filler`]);
    const mark = ctl.messages.length;
    await heartbeatAfter(mark, (h) => h.degraded === undefined, 'a heartbeat no longer degraded');
    expect(a.output()).toMatch(/state_dir .* is writable again/);
    const ran = await request('full-2', a);
    expect(ran).toMatchObject({ status: 'succeeded' });
    expect(calls(dir)).toEqual(['pihole restartdns']);
    expect(readdirSync(state).filter((f) => f.includes('.tmp-'))).toEqual([]);

    a.proc.kill('SIGTERM');
    expect((await withDeadline(a.exited, 15_000, 'agent exit')).code).toBe(0);
  }, 120_000);
});
