/**
 * The id journal's file as it grows: lines appended through one fd kept open, each written through
 * (fsync) or grouped — records written while one fsync runs share the next, off the main thread
 * (docs/performance.md). A write cut short is taken back, so no torn line glues onto the next.
 */
import { closeSync, fstatSync, fsync, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import type { StateHealth } from './state-health.js';

export class JournalFile {
  /** Kept open between appends (open and close cost as much as the write); reopened after a compaction replaces the file. */
  private fd: number | undefined;
  private fileSize = 0;
  /** Group commit: callers waiting for the next fsync, and whether one is in flight (on the thread pool). */
  private syncWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private syncing = false;
  /** An fd closed while its fsync was in flight is closed when that fsync ends: its number must not be reused under it. */
  private closeAfterSync: number[] = [];

  constructor(
    private readonly file: string,
    /** A full state_dir: degraded mode, not a crash (state-health.ts). */
    private readonly health?: Pick<StateHealth, 'failed'>,
  ) {}

  /** Settles when an fsync covering everything appended so far has finished. */
  synced(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      if (!this.syncing) this.flush();
    });
  }

  /** Returns the byte offset where the line starts. */
  append(line: string, durable = true): number {
    if (this.fd === undefined) {
      this.fd = openSync(this.file, 'a', 0o600);
      this.fileSize = fstatSync(this.fd).size;
    }
    const fd = this.fd;
    const bytes = Buffer.from(line);
    try {
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written);
      if (durable) fsyncSync(fd);
    } catch (err) {
      // A write cut short (ENOSPC) would glue the next line onto half of this one: take it back.
      try {
        ftruncateSync(fd, this.fileSize);
      } catch {
        // Nothing more to do; a torn line is skipped (and the file moved aside) at the next start.
      }
      // The next append starts from a fresh open and the file's real size.
      this.close();
      this.health?.failed(err);
      throw err;
    }
    const offset = this.fileSize;
    this.fileSize += bytes.length;
    return offset;
  }

  private flush(): void {
    const batch = this.syncWaiters.splice(0);
    const fd = this.fd;
    if (fd === undefined) {
      // A compaction rewrote the file since these were written: writeAtomic synced it with them in it.
      for (const w of batch) w.resolve();
      return;
    }
    this.syncing = true;
    fsync(fd, (err) => {
      this.syncing = false;
      for (const old of this.closeAfterSync.splice(0)) {
        try {
          closeSync(old);
        } catch {
          // Nothing was pending on it any more.
        }
      }
      for (const w of batch) {
        if (err) w.reject(err);
        else w.resolve();
      }
      if (this.syncWaiters.length > 0) this.flush();
    });
  }

  /** At stop. A later append (a broker acknowledgement arriving late) opens the file again. */
  close(): void {
    if (this.fd === undefined) return;
    if (this.syncing) {
      this.closeAfterSync.push(this.fd);
    } else {
      try {
        closeSync(this.fd);
      } catch {
        // Already closed or never valid: nothing is lost, every append was written through.
      }
    }
    this.fd = undefined;
  }
}
