/** The journal keeps outputs on disk only, and gives a repeated id its whole stored result back. */
import { appendFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { makeResult, type Result } from '../../src/core/result.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';

function big(id: string, n: number): Result {
  return {
    ...makeResult('h', { id, action: 'logs' }, { status: 'succeeded', exit_code: 0 }),
    stdout: `${id} ${'é'.repeat(n)}\n`,
    stderr: `warn ${id}`,
    steps: [{ argv: ['journalctl'], exit_code: 0, duration_ms: 3 }],
  };
}

const memoryOf = (j: Journal, id: string) =>
  (j as unknown as { index: { entries: Map<string, Result> } }).index.entries.get(id);

describe('Journal outputs on disk', () => {
  it('memory holds a summary; get() reads the whole result back, before and after a restart', () => {
    const dir = tempDir();
    const j = new Journal(dir, silentLogger());
    j.open();
    j.record(big('a', 5000));
    j.record(makeResult('h', { id: 'small', action: 'x' }, { status: 'succeeded', exit_code: 0 }));
    expect(memoryOf(j, 'a')).toMatchObject({ id: 'a', status: 'succeeded', stdout: '', stderr: '' });
    expect(memoryOf(j, 'a')?.steps).toBeUndefined();
    expect(j.get('a')).toEqual(big('a', 5000));
    expect(j.outbox().find((r) => r.id === 'a')).toEqual(big('a', 5000));
    j.close();
    const again = new Journal(dir, silentLogger());
    again.open();
    expect(memoryOf(again, 'a')?.stdout).toBe('');
    expect(again.get('a')).toEqual(big('a', 5000));
    expect(again.get('small')?.status).toBe('succeeded');
  });

  it('compactions keep every output, at its new place', () => {
    const dir = tempDir();
    const j = new Journal(dir, silentLogger(), 3); // compacts when more than 6 lines were appended
    j.open();
    for (let i = 0; i < 20; i++) {
      j.record(big(`r${i}`, 2000 + i), undefined, false);
      j.markPublished(`r${i}`);
    }
    expect(j.get('r0')).toBeUndefined();
    for (const i of [17, 18, 19]) expect(j.get(`r${i}`)).toEqual(big(`r${i}`, 2000 + i));
    j.close();
    const again = new Journal(dir, silentLogger(), 3);
    again.open();
    for (const i of [17, 18, 19]) expect(again.get(`r${i}`)).toEqual(big(`r${i}`, 2000 + i));
  });

  it('never makes room by forgetting an id still running or scheduled, or a final not yet acknowledged', () => {
    const dir = tempDir();
    const j = new Journal(dir, silentLogger(), 3);
    j.open();
    const long = makeResult('h', { id: 'long', action: 'upgrade' }, { status: 'running' });
    j.record(long, { action: 'upgrade', params: {}, timeoutMs: undefined, acceptedAt: 1 });
    j.record(makeResult('h', { id: 'sched', action: 'dns' }, { status: 'scheduled' }), {
      action: 'dns',
      params: {},
      timeoutMs: undefined,
      acceptedAt: 2,
    });
    j.record(makeResult('h', { id: 'unacked', action: 'x' }, { status: 'succeeded', exit_code: 0 }));
    for (let i = 0; i < 30; i++) {
      j.record(makeResult('h', { id: `q${i}`, action: 'x' }, { status: 'succeeded', exit_code: 0 }));
      j.markPublished(`q${i}`);
    }
    // 10,000 newer answered ids in production; 30 here with keep 3: the three stay, a resend is a repeat.
    expect(j.get('long')?.status).toBe('running');
    expect(j.request('sched')?.action).toBe('dns');
    expect(j.outbox().map((r) => r.id)).toContain('unacked');
    expect(j.get('q0')).toBeUndefined();
    j.close();
    const again = new Journal(dir, silentLogger(), 3);
    expect(
      again
        .open()
        .map((r) => r.id)
        .sort(),
    ).toEqual(['long', 'sched']);
  });

  it('a torn last line: the file is moved aside and the outputs before it are still read back', () => {
    const dir = tempDir();
    const j = new Journal(dir, silentLogger());
    j.open();
    j.record(big('kept', 3000));
    j.close();
    appendFileSync(`${dir}/journal.jsonl`, '{"id":"torn","result":{"status":"succ');
    const again = new Journal(dir, silentLogger());
    expect(again.open()).toEqual([]);
    expect(readdirSync(dir).some((n) => n.startsWith('journal.jsonl.corrupt-'))).toBe(true);
    expect(again.get('kept')).toEqual(big('kept', 3000));
    expect(again.get('torn')).toBeUndefined();
  });
});
