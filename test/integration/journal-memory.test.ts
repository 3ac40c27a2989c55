/**
 * The journal keeps summaries in memory and outputs on disk (docs/performance.md § Memory of the id journal): a
 * process that records 20,000 results of 10 KB output grows by a few MB, not by the outputs; and a
 * repeated id still gets its whole result, read back from disk. Runs the built dist/ (npm run build).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, tempDir } from '../helpers/fixtures.js';

/** RSS and heap (MB) of a fresh node process before and after 20,000 results through a Journal. */
export function measure(dist = path.join(REPO, 'dist'), results = 20_000): Record<string, number> {
  const script = `
    const { Journal } = await import(${JSON.stringify(path.join(dist, 'agent/journal.js'))});
    const { silentLogger } = await import(${JSON.stringify(path.join(dist, 'log.js'))});
    const mb = (n) => Math.round(n / 1048576);
    const j = new Journal(process.env.DIR, silentLogger());
    j.open();
    gc();
    const before = process.memoryUsage();
    const base = { host: 'h', action: 'logs', exit_code: 0, stdout_truncated: false, stderr_truncated: false };
    for (let i = 0; i < ${results}; i++) {
      const id = 'r-' + i;
      j.record({ ...base, id, status: 'running', stdout: '', stderr: '' }, undefined, false);
      // A distinct 10 KB of output each, as every command's own output is.
      const stdout = (i + ' ').repeat(Math.ceil(10240 / (String(i).length + 1))).slice(0, 10240);
      j.record({ ...base, id, status: 'succeeded', stdout, stderr: 'warn ' + i }, undefined, false);
      j.markPublished(id);
    }
    gc();
    const after = process.memoryUsage();
    const last = j.get('r-${results - 1}');
    console.log(JSON.stringify({
      rssBefore: mb(before.rss), rssAfter: mb(after.rss), heapBefore: mb(before.heapUsed), heapAfter: mb(after.heapUsed),
      kept: j.size, lastStdoutBytes: last.stdout.length, lastStderr: last.stderr === 'warn ${results - 1}' ? 1 : 0,
    }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    env: { ...process.env, DIR: tempDir() },
    encoding: 'utf8',
    timeout: 240_000,
  });
  if (r.status !== 0) throw new Error(`the measuring process failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number>;
}

describe('journal memory', () => {
  it('20,000 results with 10 KB outputs: RSS grows by summaries, not outputs; a repeat reads the whole result back', () => {
    const m = measure();
    console.log('journal memory (MB):', m);
    expect(m.kept).toBeGreaterThanOrEqual(10_000);
    expect(m.lastStdoutBytes).toBe(10_240);
    expect(m.lastStderr).toBe(1);
    // Measured: whole results in memory took the heap from 4 to 131 MB and RSS from 50 to 920 MB;
    // summaries, 4 to 8 MB and 50 to ~110 MB (allocator slack from the 200 MB of outputs made here).
    expect(m.heapAfter! - m.heapBefore!).toBeLessThan(30);
    expect(m.rssAfter! - m.rssBefore!).toBeLessThan(250);
  }, 300_000);
});
