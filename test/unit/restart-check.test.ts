/** What a start checks before it says `interrupted` (src/agent/restart-check.ts), with real processes. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { processStart, retainedFinals, stopLeftovers } from '../../src/agent/restart-check.js';
import { makeResult, type Result } from '../../src/core/result.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';
import { until } from '../helpers/wait.js';

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

/** A `sleep` leading its own process group, as the runner starts commands. */
function sleeper(): number {
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  child.unref();
  started.push(child.pid!);
  return child.pid!;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('stopLeftovers', () => {
  it('kills the recorded group when its leader has the recorded start time, and says so', async () => {
    const pid = sleeper();
    await until(() => processStart(pid) !== undefined, 5000, 'the sleeper in /proc');
    const said = await stopLeftovers({ pgid: pid, start: processStart(pid)! });
    expect(said).toBe(`what was left of it (process group ${pid}) was stopped at restart`);
    expect(alive(pid)).toBe(false);
  });

  it('never kills a group whose leader started at another time (a reused pid)', async () => {
    const pid = sleeper();
    await until(() => processStart(pid) !== undefined, 5000, 'the sleeper in /proc');
    const said = await stopLeftovers({ pgid: pid, start: String(Number(processStart(pid)) + 1) });
    expect(said).toMatch(/none of its processes .* was left/);
    expect(alive(pid)).toBe(true);
  });

  it("never kills the agent's own group, whatever the journal says", async () => {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    const start = processStart(pgid);
    if (start === undefined) return void process.stderr.write('own-group check: leader gone, skipped\n');
    expect(await stopLeftovers({ pgid, start })).toMatch(/is the agent's own; nothing was stopped/);
  });

  it('says when no process was recorded', async () => {
    expect(await stopLeftovers(undefined)).toBe('no process of it had been started');
  });

  it('a run started but with no group recorded (the agent died in the spawn gap) may still be running, and says so', async () => {
    expect(await stopLeftovers(undefined, true)).toMatch(
      /before its process group was recorded, so nothing of it could be found to stop — it may still be running: check the host/,
    );
  });
});

describe('retainedFinals', () => {
  const topicOf = (id: string) => `homelab/h1/result/${id}`;
  const result = (id: string, status: string, host = 'h1') =>
    Buffer.from(JSON.stringify({ id, host, action: 'a', status }));

  it('adopts only a final of this host and id that is not a rejection', async () => {
    const held = new Map<string, Buffer>([
      [topicOf('ok'), result('ok', 'succeeded')],
      [topicOf('other-host'), result('other-host', 'succeeded', 'h2')],
      [topicOf('other-id'), result('x', 'failed')],
      [topicOf('rejected'), result('rejected', 'rejected')],
      [topicOf('running'), result('running', 'running')],
      [topicOf('garbage'), Buffer.from('{not json')],
    ]);
    const ids = ['ok', 'other-host', 'other-id', 'rejected', 'running', 'garbage', 'none'];
    const found = await retainedFinals(ids, 'h1', topicOf, (topics) =>
      Promise.resolve(new Map(topics.flatMap((t) => (held.has(t) ? [[t, held.get(t)!]] : [])))),
    );
    expect([...found.keys()]).toEqual(['ok']);
    expect(found.get('ok')).toMatchObject({ status: 'succeeded' });
  });

  it('a read that fails (the connection went) adopts nothing', async () => {
    const found = await retainedFinals(['a'], 'h1', topicOf, () => Promise.reject(new Error('closed')));
    expect(found.size).toBe(0);
  });
});

describe('the journal keeps a request’s reply target and process across a restart', () => {
  it('reads them back while the id is unfinished, drops the process once final, and ignores hostile ones', () => {
    const dir = tempDir();
    const j = new Journal(dir, silentLogger());
    j.open();
    const ref = { id: 'r1', action: 'a' };
    j.record(makeResult('h1', ref, { status: 'running' }), undefined, true, {
      reply: { topic: 'homelab/h1/reply/me', correlation: Buffer.from('c').toString('base64') },
    });
    j.record(makeResult('h1', ref, { status: 'running' }), undefined, true, {
      proc: { pgid: 4242, start: '123' },
    });
    j.record(makeResult('h1', { id: 'r2', action: 'a' }, { status: 'running' }), undefined, true, {
      proc: { pgid: 1, start: '1' },
    });
    j.close();
    const again = new Journal(dir, silentLogger());
    expect(again.open().map((r: Result) => r.id)).toEqual(['r1', 'r2']);
    expect(again.replyOf('r1')).toEqual({ topic: 'homelab/h1/reply/me', correlation: 'Yw==' });
    expect(again.processOf('r1')).toEqual({ pgid: 4242, start: '123' });
    expect(again.processOf('r2')).toBeUndefined();
    again.record(makeResult('h1', ref, { status: 'succeeded', exit_code: 0 }));
    expect(again.processOf('r1')).toBeUndefined();
    expect(again.replyOf('r1')).toBeDefined();
    again.markPublished('r1');
    expect(again.replyOf('r1')).toBeUndefined();
    again.close();
  });
});
