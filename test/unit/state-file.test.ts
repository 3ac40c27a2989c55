/** state_dir files: corrupt ones are moved aside with a warning, never a crash loop. */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { Journal } from '../../src/agent/journal.js';
import { JsonStateFile, removeStaleTemps, writeAtomic } from '../../src/agent/state-file.js';
import { makeResult } from '../../src/core/result.js';
import { tempDir } from '../helpers/fixtures.js';

/** A logger whose lines the test can read. */
function capture(): { log: pino.Logger; lines: () => string[] } {
  const out: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => out.push(s) });
  return { log, lines: () => out };
}

describe('JsonStateFile', () => {
  const schema = z.record(z.string(), z.number());

  it('round-trips through an atomic write', () => {
    const dir = tempDir();
    const { log } = capture();
    const f = new JsonStateFile(dir, 's.json', schema, log, 'the test state');
    expect(f.read({})).toEqual({});
    f.write({ a: 1 });
    expect(new JsonStateFile(dir, 's.json', schema, log, 'the test state').read({})).toEqual({ a: 1 });
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it.each([
    ['not JSON', '{"a": 1,'],
    ['wrong shape', '{"a": "one"}'],
    ['empty', ''],
  ])('a corrupt file (%s) is moved aside with a warning and the fallback is used', (_l, content) => {
    const dir = tempDir();
    writeFileSync(`${dir}/s.json`, content);
    const { log, lines } = capture();
    expect(new JsonStateFile(dir, 's.json', schema, log, 'the test state').read({ fallback: 0 })).toEqual({
      fallback: 0,
    });
    expect(existsSync(`${dir}/s.json`)).toBe(false);
    const aside = readdirSync(dir).filter((n) => n.startsWith('s.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(`${dir}/${aside[0]}`, 'utf8')).toBe(content);
    expect(lines().join('')).toMatch(/the test state was corrupt; moved it aside/);
  });
});

describe('Journal', () => {
  const result = (id: string, status: 'running' | 'succeeded') =>
    makeResult('h', { id, action: 'a' }, { status });

  it('a torn last line (a crash mid-append) keeps what was readable and moves the file aside', () => {
    const dir = tempDir();
    const { log, lines } = capture();
    const j = new Journal(dir, log);
    j.open();
    j.record(result('one', 'succeeded'));
    writeFileSync(`${dir}/journal.jsonl`, `${readFileSync(`${dir}/journal.jsonl`, 'utf8')}{"id":"two","resu`);
    const j2 = new Journal(dir, log);
    expect(j2.open()).toEqual([]);
    expect(j2.get('one')?.status).toBe('succeeded');
    expect(j2.get('two')).toBeUndefined();
    expect(readdirSync(dir).some((n) => n.startsWith('journal.jsonl.corrupt-'))).toBe(true);
    expect(lines().join('')).toMatch(/unreadable lines; moved it aside/);
    // The rewritten journal is clean: a third open finds nothing to complain about.
    const { log: log3, lines: lines3 } = capture();
    new Journal(dir, log3).open();
    expect(lines3()).toEqual([]);
  });

  it('returns the entries a crash left unfinished, and forgets released ids', () => {
    const dir = tempDir();
    const { log } = capture();
    const j = new Journal(dir, log);
    j.open();
    j.record(result('done', 'succeeded'));
    j.record(result('cut', 'running'));
    j.record(result('queued', 'running'));
    j.forget('queued');
    const again = new Journal(dir, log);
    expect(again.open().map((r) => r.id)).toEqual(['cut']);
    expect(again.get('queued')).toBeUndefined();
  });

  it('the record whose append triggers a compaction is in the rewritten file (it was lost before: a restart could run its id again)', () => {
    const dir = tempDir();
    const { log } = capture();
    const j = new Journal(dir, log, 2); // compacts when more than 4 lines were appended
    j.open();
    for (const id of ['a', 'b', 'c', 'd', 'e']) j.record(result(id, 'succeeded'));
    j.close();
    const again = new Journal(dir, log, 2);
    again.open();
    expect(again.get('e')?.status).toBe('succeeded');
    expect(again.get('d')?.status).toBe('succeeded');
  });

  it('recordDurable: the id is known at once, the promise waits for the sync, and a burst shares fsyncs safely', async () => {
    const dir = tempDir();
    const { log } = capture();
    const j = new Journal(dir, log, 5); // a small keep: the burst forces compactions mid-sync
    j.open();
    const ids = Array.from({ length: 40 }, (_, i) => `burst-${i}`);
    const synced = ids.map((id) => j.recordDurable(result(id, 'running')));
    // Before any fsync finished, a repeat of the id must already be recognised (it must never run twice).
    expect(j.get('burst-39')?.status).toBe('running');
    await Promise.all(synced);
    j.record(result('after', 'succeeded'));
    j.close();
    // What a restart sees: the last `keep` entries, the burst's unfinished ones reported as cut short.
    const again = new Journal(dir, log, 5);
    const unfinished = again.open().map((r) => r.id);
    expect(unfinished).toEqual(expect.arrayContaining(ids.slice(-4)));
    expect(unfinished.every((id) => ids.includes(id))).toBe(true);
    expect(again.get('after')?.status).toBe('succeeded');
  });

  it('a state_dir that cannot be created is a clear startup error', () => {
    const { log } = capture();
    // A path under a regular file: ENOTDIR whoever runs the test (root ignores permission bits).
    expect(() => new Journal('/dev/null/homelab-cmd', log).open()).toThrow(
      /state_dir \/dev\/null\/homelab-cmd is not a writable directory \(ENOTDIR\) — create it and give the agent's user write access/,
    );
  });
});

describe('temp files', () => {
  it('a failed atomic write removes its temp file', () => {
    const dir = tempDir();
    // The rename fails (a directory is in the way): the temp file must not stay behind.
    mkdirSync(`${dir}/s.json`);
    expect(() => writeAtomic(`${dir}/s.json`, '{}')).toThrow();
    expect(readdirSync(dir)).toEqual(['s.json']);
  });

  it('at start, removes stale temp files of our own naming and nothing else', () => {
    const dir = tempDir();
    for (const name of [
      'journal.jsonl.tmp-123',
      'stats.json.tmp-9',
      'notes.tmp',
      'keep.tmp-x',
      'journal.jsonl',
    ])
      writeFileSync(`${dir}/${name}`, '');
    mkdirSync(`${dir}/broker`);
    removeStaleTemps(dir, capture().log);
    expect(readdirSync(dir).sort()).toEqual(['broker', 'journal.jsonl', 'keep.tmp-x', 'notes.tmp']);
  });
});
