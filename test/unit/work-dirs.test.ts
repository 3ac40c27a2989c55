/**
 * Private working directories made ahead (src/exec/work-dirs.ts): each handed out once, and a spare that
 * is no longer what mkdtemp made — a symlink put in its place, loosened permissions — never handed out.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, rmdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkDirs } from '../../src/exec/work-dirs.js';
import { tempDir } from '../helpers/fixtures.js';
import { until } from '../helpers/wait.js';

const opened: WorkDirs[] = [];
afterEach(() => {
  for (const w of opened.splice(0)) w.close();
});

/** A WorkDirs making its directories in a temp dir of its own (it reads TMPDIR when made). */
function workDirs(ahead: number): { w: WorkDirs; tmp: string } {
  const tmp = tempDir();
  const before = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    const w = new WorkDirs(ahead);
    opened.push(w);
    return { w, tmp };
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
}

const spares = (tmp: string) => readdirSync(tmp).map((n) => path.join(tmp, n));

describe('WorkDirs', () => {
  it('makes spares ahead, hands each out once, and removes the rest at close', async () => {
    const { w, tmp } = workDirs(2);
    w.start();
    // Ready, not only on disk: a spare counts once its mkdtemp's callback has run.
    await until(() => w.ready === 2, 5000, 'two spares');
    const made = new Set(spares(tmp));
    const taken = [w.take(), w.take(), w.take()];
    expect(new Set(taken).size).toBe(3);
    expect(made.has(taken[0]!) && made.has(taken[1]!)).toBe(true); // the spares first
    for (const d of taken) expect(lstatSync(d).mode & 0o7777).toBe(0o700);
    await until(() => w.ready === 2, 5000, 'the spares made again');
    for (const d of taken) rmdirSync(d);
    // Spares still being made when it closes (on disk, their callback not yet run) go as they arrive.
    w.close();
    await until(() => readdirSync(tmp).length === 0, 5000, 'every spare removed');
  });

  it('a spare swapped for a symlink, or loosened, is not handed out', async () => {
    const { w, tmp } = workDirs(1);
    w.start();
    await until(() => w.ready === 1, 5000, 'a spare');
    const [spare] = spares(tmp);
    const elsewhere = path.join(tempDir(), 'state');
    mkdirSync(elsewhere);
    rmdirSync(spare!);
    symlinkSync(elsewhere, spare!);
    const first = w.take();
    expect(first).not.toBe(spare);
    expect(lstatSync(first).isDirectory()).toBe(true);
    expect(lstatSync(spare!).isSymbolicLink()).toBe(true); // left alone: not the agent's to remove

    await until(() => w.ready === 1, 5000, 'the next spare');
    const next = spares(tmp).find((d) => d !== first && d !== spare)!;
    chmodSync(next, 0o777);
    expect(w.take()).not.toBe(next);
  });
});
