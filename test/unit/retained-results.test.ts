/** The record of retained per-id results in state_dir (agent/retained-results.ts): real files. */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RETAINED_RESULTS_FILE, RetainedResults } from '../../src/agent/retained-results.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';

const ids = (n: number, tag = 'r') => Array.from({ length: n }, (_, i) => `${tag}-${i}`);

describe('RetainedResults', () => {
  it('keeps the last `keep`, returning the oldest to clear, and the newest publication counts', () => {
    const dir = tempDir();
    const r = new RetainedResults(dir, silentLogger(), () => [], 3);
    expect(ids(3).flatMap((id) => r.published(id))).toEqual([]);
    expect(r.published('r-0')).toEqual([]); // republished: now the newest
    expect(r.published('r-3')).toEqual(['r-1']);
    expect(r.published('r-4')).toEqual(['r-2']);
  });

  it('remembers across a restart, rejections included (what the journal never holds)', () => {
    const dir = tempDir();
    const first = new RetainedResults(dir, silentLogger(), () => [], 100);
    for (const id of ids(150)) first.published(id);
    const second = new RetainedResults(dir, silentLogger(), () => ['journal-only'], 100);
    // The first publication after the restart pushes out the oldest the first run kept.
    expect(second.published('new-0')).toEqual(['r-50']);
    expect(second.published('new-1')).toEqual(['r-51']);
  });

  it('starts from the journal’s final ids when there is no record yet (an upgrade)', () => {
    const dir = tempDir();
    const r = new RetainedResults(dir, silentLogger(), () => ids(5, 'j'), 5);
    expect(r.published('x')).toEqual(['j-0']);
  });

  it('a record past its bound is compacted; unreadable lines are skipped, never used as topics', () => {
    const dir = tempDir();
    const file = path.join(dir, RETAINED_RESULTS_FILE);
    const r = new RetainedResults(dir, silentLogger(), () => [], 10);
    for (const id of ids(500)) r.published(id);
    expect(readFileSync(file, 'utf8').split('\n').length).toBeLessThanOrEqual(10 * 10 + 20);
    writeFileSync(file, '+ok-1\n+../../evil\n+a/b\n*junk\n+ok-2\n+ok-');
    const again = new RetainedResults(dir, silentLogger(), () => [], 2);
    expect(again.published('ok-3')).toEqual(['ok-1']); // ok-2 and ok-3 kept; the torn "ok-" never read
    expect(readdirSync(dir).some((f) => f.includes('.corrupt-'))).toBe(true);
  });
});
