/**
 * The id journal: every accepted request and its latest result, in
 * `state_dir/journal.jsonl`, so a repeated id — even after a restart — gets its
 * stored result and never runs twice. Append-only lines (one write + fsync per
 * change) with periodic compaction through an atomic rewrite; a torn last line
 * from a crash is skipped, a corrupt file is moved aside, never a crash loop.
 */
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { isFinal, type Result } from '../core/result.js';
import { ensureWritableDir, moveAside, writeAtomic } from './state-file.js';

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
  private readonly file: string;
  private lines = 0;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly keep = 10_000,
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
        const e = JSON.parse(line) as JournalEntry | { id: string; forget: true };
        if (typeof e.id !== 'string') throw new Error('not an entry');
        this.entries.delete(e.id); // re-insert: Map order is recency order
        if ('forget' in e) continue;
        if (typeof e.result?.status !== 'string') throw new Error('not an entry');
        this.entries.set(e.id, e.result);
        if (e.request) this.requests.set(e.id, e.request);
        else if (isFinal(e.result.status)) this.requests.delete(e.id);
      } catch {
        bad++;
      }
    }
    if (bad > 0) {
      const aside = moveAside(this.file);
      this.log.warn({ file: this.file, movedTo: aside, badLines: bad, kept: this.entries.size }, 'the id journal had unreadable lines; moved it aside and kept what was readable');
    }
    this.compact();
    return [...this.entries.values()].filter((r) => !isFinal(r.status));
  }

  get(id: string): Result | undefined {
    return this.entries.get(id);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Durable before it returns: the caller runs a command only after this. */
  record(result: Result, request?: StoredRequest): void {
    this.entries.delete(result.id);
    this.entries.set(result.id, result);
    if (request) this.requests.set(result.id, request);
    else if (isFinal(result.status)) this.requests.delete(result.id);
    const entry: JournalEntry = { id: result.id, result };
    if (request) entry.request = request;
    this.append(`${JSON.stringify(entry)}\n`);
  }

  /** The stored request of an accepted, not yet final id. */
  request(id: string): StoredRequest | undefined {
    return this.requests.get(id);
  }

  /** An accepted id that never ran (stopped while queued) becomes free to send again. */
  forget(id: string): void {
    this.requests.delete(id);
    if (!this.entries.delete(id)) return;
    this.append(`${JSON.stringify({ id, forget: true })}\n`);
  }

  private append(line: string): void {
    const fd = openSync(this.file, 'a', 0o600);
    try {
      appendFileSync(fd, line);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.lines++;
    if (this.lines > this.keep * 2) this.compact();
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
    }
    const text = [...this.entries.entries()]
      .map(([id, result]) => {
        const request = this.requests.get(id);
        return JSON.stringify(request ? { id, result, request } : { id, result });
      })
      .join('\n');
    writeAtomic(this.file, text === '' ? '' : `${text}\n`);
    this.lines = this.entries.size;
  }
}
