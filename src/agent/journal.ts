/**
 * The id journal: every accepted request and its latest result, in
 * `state_dir/journal.jsonl`, so a repeated id — even after a restart — gets its
 * stored result and never runs twice. Append-only lines (one write + fsync per
 * change) with periodic compaction through an atomic rewrite; a torn last line
 * from a crash is skipped, a corrupt file is moved aside, never a crash loop.
 */
import {
  closeSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { isFinal, type Result } from '../core/result.js';
import { ensureWritableDir, moveAside, writeAtomic } from './state-file.js';
import type { StateHealth } from './state-health.js';

/** What is needed to run an accepted request later (a scheduled run, after a restart). */
export interface StoredRequest {
  action: string;
  params: Record<string, string>;
  timeoutMs: number | undefined;
  acceptedAt: number;
}

export interface JournalEntry {
  id: string;
  result: Result;
  request?: StoredRequest;
}

export class Journal {
  private readonly entries = new Map<string, Result>();
  private readonly requests = new Map<string, StoredRequest>();
  /** Final results the broker has not acknowledged yet: the outbox, published again after a restart. */
  private readonly unpublished = new Set<string>();
  private readonly file: string;
  private lines = 0;
  /** Kept open between appends (open and close cost as much as the write); reopened after a compaction replaces the file. */
  private fd: number | undefined;
  private fileSize = 0;
  /** Group commit: callers waiting for the next fsync, and whether one is in flight (on the thread pool). */
  private syncWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private syncing = false;
  /** An fd closed while its fsync was in flight is closed when that fsync ends: its number must not be reused under it. */
  private closeAfterSync: number[] = [];
  /** A compaction a full disk refused: tried again at the next change. */
  private compactPending = false;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly keep = 10_000,
    /** A full state_dir: degraded mode, not a crash (state-health.ts). */
    private readonly health?: Pick<StateHealth, 'assertWritable' | 'failed'>,
  ) {
    this.file = path.join(dir, 'journal.jsonl');
  }

  /** Reads the journal; returns the entries that were not final (they were cut short by a crash). */
  open(): Result[] {
    ensureWritableDir(this.dir);
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let bad = 0;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const e = JSON.parse(line) as
          JournalEntry | { id: string; forget: true } | { id: string; published: true };
        if (typeof e.id !== 'string') throw new Error('not an entry');
        if ('published' in e) {
          this.unpublished.delete(e.id);
          continue;
        }
        this.entries.delete(e.id); // re-insert: Map order is recency order
        this.unpublished.delete(e.id);
        if ('forget' in e) continue;
        if (typeof e.result?.status !== 'string') throw new Error('not an entry');
        this.entries.set(e.id, e.result);
        if (isFinal(e.result.status)) this.unpublished.add(e.id);
        if (e.request) this.requests.set(e.id, e.request);
        else if (isFinal(e.result.status)) this.requests.delete(e.id);
      } catch {
        bad++;
      }
    }
    if (bad > 0) {
      const aside = moveAside(this.file);
      this.log.warn(
        { file: this.file, movedTo: aside, badLines: bad, kept: this.entries.size },
        'the id journal had unreadable lines; moved it aside and kept what was readable',
      );
    }
    this.compactIfLong(true);
    return [...this.entries.values()].filter((r) => !isFinal(r.status));
  }

  get(id: string): Result | undefined {
    return this.entries.get(id);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Durable before it returns: the caller runs a command only after this. */
  /**
   * `durable`: fsync before returning. Only the record that accepts an id must survive a power cut
   * (it is what stops a second run); later records survive any crash of the agent itself through the
   * page cache, and losing one to a power cut is safe (the id reads interrupted, or is republished).
   */
  record(result: Result, request?: StoredRequest, durable = true): void {
    const entry: JournalEntry = { id: result.id, result };
    if (request) entry.request = request;
    // On disk first: if the write fails (a full disk), memory must not claim the id was accepted.
    this.append(`${JSON.stringify(entry)}\n`, durable);
    this.entries.delete(result.id);
    this.entries.set(result.id, result);
    if (isFinal(result.status)) this.unpublished.add(result.id);
    else this.unpublished.delete(result.id);
    if (request) this.requests.set(result.id, request);
    else if (isFinal(result.status)) this.requests.delete(result.id);
    this.compactIfLong();
  }

  /**
   * Written now (memory too, so a repeat of the id is recognised at once); the promise settles when an
   * fsync covering it has finished. The caller runs nothing before that. Records written while one fsync
   * runs share the next: a burst of 16 requests costs about two fsyncs, off the main thread.
   */
  recordDurable(result: Result, request?: StoredRequest): Promise<void> {
    // While state_dir is full, a new request is refused before anything is written (the busy path).
    this.health?.assertWritable();
    this.record(result, request, false);
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      if (!this.syncing) this.flush();
    });
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

  /** The stored request of an accepted, not yet final id. */
  request(id: string): StoredRequest | undefined {
    return this.requests.get(id);
  }

  /** The broker acknowledged this id's final result: it leaves the outbox. */
  markPublished(id: string): void {
    if (!this.unpublished.delete(id)) return;
    this.append(`${JSON.stringify({ id, published: true })}\n`, false);
    this.compactIfLong();
  }

  /** Final results not yet acknowledged by the broker, oldest first (at most the last `limit`). */
  outbox(limit = 100): Result[] {
    return [...this.entries.values()].filter((r) => this.unpublished.has(r.id)).slice(-limit);
  }

  /** An accepted id that never ran (stopped while queued) becomes free to send again. */
  forget(id: string): void {
    this.requests.delete(id);
    this.unpublished.delete(id);
    if (!this.entries.delete(id)) return;
    this.append(`${JSON.stringify({ id, forget: true })}\n`);
    this.compactIfLong();
  }

  private append(line: string, durable = true): void {
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
    this.fileSize += bytes.length;
    this.lines++;
  }

  /** Called once memory holds what was just appended: the rewrite is made from memory. */
  private compactIfLong(now = false): void {
    if (!now && !this.compactPending && this.lines <= this.keep * 2) return;
    // What was appended is on disk already: a rewrite a full disk refuses must not make it look unwritten.
    try {
      this.compact();
      this.compactPending = false;
    } catch (err) {
      this.compactPending = true;
      this.health?.failed(err);
      this.log.warn(
        { file: this.file, err: (err as Error).message },
        'could not compact the id journal; will retry',
      );
    }
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

  /** The ids of final results, oldest first. */
  finalIds(): string[] {
    return [...this.entries.entries()].filter(([, r]) => isFinal(r.status)).map(([id]) => id);
  }

  private compact(): void {
    while (this.entries.size > this.keep) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
      this.requests.delete(oldest);
      this.unpublished.delete(oldest);
    }
    const text = [...this.entries.entries()]
      .flatMap(([id, result]) => {
        const request = this.requests.get(id);
        const line = JSON.stringify(request ? { id, result, request } : { id, result });
        return isFinal(result.status) && !this.unpublished.has(id)
          ? [line, JSON.stringify({ id, published: true })]
          : [line];
      })
      .join('\n');
    writeAtomic(this.file, text === '' ? '' : `${text}\n`);
    // The rename replaced the file: an fd kept open would append to the old one.
    this.close();
    this.lines = this.entries.size;
  }
}
