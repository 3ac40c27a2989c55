/** The replay set of signed ids: kept for the window, across restarts, refusing when full. */
import { appendFileSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SignedIds } from '../../src/agent/signed-ids.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';

const WINDOW = 300_000;
const NOW = 1_800_000_000_000;

describe('SignedIds', () => {
  it('remembers an id until ts + window has passed, and across a restart', async () => {
    const dir = tempDir();
    const a = new SignedIds(dir, WINDOW, silentLogger());
    expect(a.has('s-1', NOW)).toBe(false);
    await a.remember('s-1', NOW - 1000, NOW);
    expect(a.has('s-1', NOW)).toBe(true);
    const b = new SignedIds(dir, WINDOW, silentLogger());
    expect(b.has('s-1', NOW + 1000)).toBe(true);
    expect(b.has('s-1', NOW - 1000 + WINDOW)).toBe(true);
    expect(b.has('s-1', NOW - 1000 + WINDOW + 1)).toBe(false);
    // A restart after the window starts without it.
    const c = new SignedIds(dir, WINDOW, silentLogger());
    expect(c.has('s-1', NOW + WINDOW)).toBe(false);
    expect(c.size).toBe(0);
    expect(readFileSync(`${dir}/signed-ids.jsonl`, 'utf8')).toBe('');
  });

  it('releases an id that never started, so the same signed request can be sent again, across a restart', async () => {
    const dir = tempDir();
    const a = new SignedIds(dir, WINDOW, silentLogger());
    await a.remember('s-1', NOW, NOW);
    await a.remember('s-2', NOW, NOW);
    a.release('s-1');
    expect(a.has('s-1', NOW)).toBe(false);
    expect(a.has('s-2', NOW)).toBe(true);
    const b = new SignedIds(dir, WINDOW, silentLogger());
    expect(b.has('s-1', NOW)).toBe(false);
    expect(b.has('s-2', NOW)).toBe(true);
  });

  it('when full, refuses (full) rather than forgetting a live id; expired ones make room', async () => {
    const dir = tempDir();
    const s = new SignedIds(dir, WINDOW, silentLogger(), 3);
    await s.remember('a', NOW, NOW);
    await s.remember('b', NOW - 200_000, NOW);
    await s.remember('c', NOW, NOW);
    expect(s.full(NOW)).toBe(true);
    expect(s.has('a', NOW) && s.has('b', NOW) && s.has('c', NOW)).toBe(true);
    // b's window passes: one place frees.
    expect(s.full(NOW + 100_001)).toBe(false);
    expect(s.has('a', NOW + 100_001)).toBe(true);
  });

  it('is bounded by the window, not by newer ids: 12,000 more leave the first one in', async () => {
    const dir = tempDir();
    const s = new SignedIds(dir, WINDOW, silentLogger());
    await s.remember('first', NOW, NOW);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 12_000; i++) writes.push(s.remember(`n-${i}`, NOW, NOW));
    await Promise.all(writes);
    expect(s.has('first', NOW)).toBe(true);
    expect(new SignedIds(dir, WINDOW, silentLogger()).has('first', NOW)).toBe(true);
  }, 60_000);

  it('skips lines someone else wrote into state_dir, and keeps the rest', async () => {
    const dir = tempDir();
    const s = new SignedIds(dir, WINDOW, silentLogger());
    await s.remember('good', NOW, NOW);
    appendFileSync(
      `${dir}/signed-ids.jsonl`,
      '{"id":"../x","ts":1}\n{"id":"y","ts":"soon"}\n{"__proto__":{"id":"z"}}\nnot json\n{"id":"torn',
    );
    const again = new SignedIds(dir, WINDOW, silentLogger());
    expect(again.has('good', NOW)).toBe(true);
    expect(again.size).toBe(1);
  });
});
