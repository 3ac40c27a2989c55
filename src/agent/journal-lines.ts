/**
 * Line-level file access for the id journal: reading it line by line with each line's byte offset
 * (no whole-file copy in memory), reading one line back by its offset, and rewriting it atomically
 * one line at a time. The journal keeps outputs on disk only (docs/performance.md § Memory of the id journal).
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { Result } from '../core/result.js';

/** Where a record line is in journal.jsonl. */
export interface Place {
  offset: number;
  length: number;
}

/** What memory keeps of a big result: everything but its outputs (and the per-step details). */
export function summaryOf(result: Result): Result {
  const summary: Result = { ...result, stdout: '', stderr: '' };
  delete summary.steps;
  delete summary.health;
  delete summary.rollback;
  delete summary.attempts;
  return summary;
}

const CHUNK = 1 << 20;

/** Every line of `file` (without its newline) with where it starts and its length in bytes; ENOENT throws. */
export function forEachLine(
  file: string,
  onLine: (line: string, offset: number, length: number) => void,
): void {
  const fd = openSync(file, 'r');
  try {
    let carry = Buffer.alloc(0);
    let carryAt = 0;
    const chunk = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const n = readSync(fd, chunk, 0, CHUNK, null);
      if (n === 0) break;
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let start = 0;
      // A UTF-8 multi-byte sequence never contains the byte 0x0a: splitting bytes on it is safe.
      for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
        onLine(buf.toString('utf8', start, nl), carryAt + start, nl - start);
        start = nl + 1;
      }
      carryAt += start;
      carry = Buffer.from(buf.subarray(start));
    }
    // A last line without its newline (torn by a crash) is still handed over: the caller judges it.
    if (carry.length > 0) onLine(carry.toString('utf8'), carryAt, carry.length);
  } finally {
    closeSync(fd);
  }
}

/** The line at `offset` of `length` bytes, in `file` (a path, or an fd open for reading). */
export function readLineAt(file: string | number, offset: number, length: number): string {
  const fd = typeof file === 'number' ? file : openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) throw new Error(`the journal ends before byte ${offset + length}`);
      got += n;
    }
    return buf.toString('utf8');
  } finally {
    if (typeof file !== 'number') closeSync(fd);
  }
}

/**
 * Writes `lines` (each gets its newline) to a temporary file, fsyncs it and renames it over `file`:
 * a reader sees the old file or the new one. `lines` is asked one line at a time, and `written` learns
 * where each landed — meaningful only once this returns.
 */
export function rewriteAtomic(
  file: string,
  lines: Iterable<string>,
  written: (index: number, offset: number, length: number) => void = () => undefined,
): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    let at = 0;
    let i = 0;
    for (const line of lines) {
      const bytes = Buffer.from(`${line}\n`);
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done);
      written(i++, at, bytes.length - 1);
      at += bytes.length;
    }
    fsyncSync(fd);
  } catch (err) {
    // A full disk must not leave a half-written copy behind (docs/operations.md § The state directory).
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}
