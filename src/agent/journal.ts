/**
 * The id journal: every accepted request and its latest result, in
 * `state_dir/journal.jsonl`, so a repeated id — even after a restart — gets its
 * stored result and never runs twice. Append-only lines (one write + fsync per
 * change) with periodic compaction through an atomic rewrite; a torn last line
 * from a crash is skipped, a corrupt file is moved aside, never a crash loop.
 * Memory holds a summary of each result; a result's outputs stay on disk only, and a repeated id's
 * full result is read back from its line (docs/performance.md § Memory of the id journal).
 */
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { isFinal, type Result } from '../core/result.js';
import { ensureWritableDir, moveAside } from './state-file.js';
import type { StateHealth } from './state-health.js';
import { JournalFile } from './journal-file.js';
import { JournalIndex } from './journal-index.js';
import {
  type JournalEntry,
  type Notes,
  type StoredProcess,
  type StoredReply,
  type StoredRequest,
} from './journal-records.js';
import { forEachLine, readLineAt, rewriteAtomic, type Place } from './journal-lines.js';

export type { JournalEntry, Notes, StoredProcess, StoredReply, StoredRequest } from './journal-records.js';

export class Journal {
  /** What is remembered of each id (journal-index.ts). */
  private readonly index = new JournalIndex();
  private readonly file: string;
  /** The appends and their fsyncs (journal-file.ts). */
  private readonly out: JournalFile;
  private lines = 0;
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
    this.out = new JournalFile(this.file, health);
  }

  /** Reads the journal; returns the entries that were not final (they were cut short by a crash). */
  open(): Result[] {
    ensureWritableDir(this.dir);
    let bad = 0;
    const readLine = (line: string, offset: number, length: number): void => {
      if (line.trim() === '') return;
      try {
        const e = JSON.parse(line) as
          JournalEntry | { id: string; forget: true } | { id: string; published: true };
        if (typeof e.id !== 'string') throw new Error('not an entry');
        this.index.replay(e, { offset, length });
      } catch {
        bad++;
      }
    };
    try {
      forEachLine(this.file, readLine);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // The outputs of what was read are in this file, until the compaction below rewrites it.
    let source = this.file;
    if (bad > 0) {
      const aside = moveAside(this.file);
      source = aside;
      this.log.warn(
        { file: this.file, movedTo: aside, badLines: bad, kept: this.index.entries.size },
        'the id journal had unreadable lines; moved it aside and kept what was readable',
      );
    }
    // The outputs of what was read are in `source` until this rewrite: read them back from there.
    this.compactIfLong(true, source);
    return [...this.index.entries.values()].filter((r) => !isFinal(r.status));
  }

  /** The id's latest result, whole: outputs are read back from disk when only its summary is in memory. */
  get(id: string): Result | undefined {
    const summary = this.index.entries.get(id);
    if (summary === undefined) return undefined;
    return this.whole(id, summary, this.file);
  }

  private whole(id: string, summary: Result, source: string | number): Result {
    const place = this.index.onDisk.get(id);
    if (place === undefined) return summary;
    try {
      const e = JSON.parse(readLineAt(source, place.offset, place.length)) as JournalEntry;
      if (e.id === id && e.result?.status === summary.status) return e.result;
      throw new Error('the line there is not this result');
    } catch (err) {
      this.log.warn(
        { err, id, file: source },
        'could not read a stored result back; answering with its summary',
      );
      return summary;
    }
  }

  get size(): number {
    return this.index.entries.size;
  }

  /** Durable before it returns: the caller runs a command only after this. */
  /**
   * `durable`: fsync before returning. Only the record that accepts an id must survive a power cut
   * (it is what stops a second run); later records survive any crash of the agent itself through the
   * page cache, and losing one to a power cut is safe (the id reads interrupted, or is republished).
   */
  record(result: Result, request?: StoredRequest, durable = true, notes: Notes = {}): void {
    this.write(result, request, durable, notes, true);
  }

  /**
   * `keep`: a record of an id already accepted (a result already published) stays in memory even when
   * the disk refuses it, so a repeat is never answered with an older state; the next compaction writes it.
   * The record that accepts an id is not kept: memory must not claim an id the disk does not hold.
   */
  private write(
    result: Result,
    request: StoredRequest | undefined,
    durable: boolean,
    notes: Notes,
    keep: boolean,
  ): void {
    const id = result.id;
    const entry: JournalEntry = { id, result };
    if (request) entry.request = request;
    const reply = notes.reply ?? this.index.replies.get(id);
    if (reply) entry.reply = reply;
    const proc = isFinal(result.status) ? undefined : (notes.proc ?? this.index.procs.get(id));
    if (proc) entry.proc = proc;
    const line = JSON.stringify(entry);
    let place: Place | undefined;
    try {
      place = { offset: this.append(`${line}\n`, durable), length: Buffer.byteLength(line) };
    } catch (err) {
      if (!keep) throw err;
      this.compactPending = true;
      this.index.remember(result, request, reply, proc, undefined);
      throw err;
    }
    this.index.remember(result, request, reply, proc, place);
    this.compactIfLong();
  }

  /** Where the request of this id asked for its answer, as journaled (unchecked: core/reply.ts checks it). */
  replyOf(id: string): StoredReply | undefined {
    return this.index.replies.get(id);
  }

  /** The process group the id's command was spawned in, while it is not final. */
  processOf(id: string): StoredProcess | undefined {
    return this.index.procs.get(id);
  }

  /**
   * Written now (memory too, so a repeat of the id is recognised at once); the promise settles when an
   * fsync covering it has finished. The caller runs nothing before that. Records written while one fsync
   * runs share the next: a burst of 16 requests costs about two fsyncs, off the main thread.
   */
  recordDurable(result: Result, request?: StoredRequest, notes: Notes = {}): Promise<void> {
    // While state_dir is full, a new request is refused before anything is written (the busy path).
    this.health?.assertWritable();
    this.write(result, request, false, notes, false);
    return this.out.synced();
  }

  /** The stored request of an accepted, not yet final id. */
  request(id: string): StoredRequest | undefined {
    return this.index.requests.get(id);
  }

  /** The broker acknowledged this id's final result: it leaves the outbox. */
  markPublished(id: string): void {
    this.index.replies.delete(id);
    if (!this.index.unpublished.delete(id)) return;
    this.append(`${JSON.stringify({ id, published: true })}\n`, false);
    this.compactIfLong();
  }

  /** Whether this id's final result waits in the outbox (journaled, not yet acknowledged by the broker). */
  inOutbox(id: string): boolean {
    return this.index.unpublished.has(id);
  }

  /** Final results not yet acknowledged by the broker, oldest first (at most the last `limit`). */
  outbox(limit = 100): Result[] {
    return [...this.index.entries.values()]
      .filter((r) => this.index.unpublished.has(r.id))
      .slice(-limit)
      .map((r) => this.whole(r.id, r, this.file));
  }

  /** An accepted id that never ran (stopped while queued) becomes free to send again. */
  forget(id: string): void {
    if (!this.index.forget(id)) return;
    this.append(`${JSON.stringify({ id, forget: true })}\n`);
    this.compactIfLong();
  }

  /** Called once memory holds what was just appended: the rewrite is made from memory. */
  private compactIfLong(now = false, source = this.file): void {
    if (!now && !this.compactPending && this.lines <= this.keep * 2) return;
    // What was appended is on disk already: a rewrite a full disk refuses must not make it look unwritten.
    try {
      this.compact(source);
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
    this.out.close();
  }

  /** Returns the byte offset where the line starts. */
  private append(line: string, durable = true): number {
    const offset = this.out.append(line, durable);
    this.lines++;
    return offset;
  }

  /** The ids of final results, oldest first. */
  finalIds(): string[] {
    return [...this.index.entries.entries()].filter(([, r]) => isFinal(r.status)).map(([id]) => id);
  }

  /** Rewrites the file from memory, each big result's line copied from `source` (one line at a time). */
  private compact(source = this.file): void {
    this.index.dropOldest(this.keep);
    const entries = [...this.index.entries.entries()];
    /** The id of each line written, "" for an acknowledgement line. */
    const lineIds: string[] = [];
    let from: number | undefined;
    try {
      from = this.index.onDisk.size > 0 ? openSync(source, 'r') : undefined;
    } catch (err) {
      this.log.warn(
        { err, file: source },
        'cannot read the old journal back; keeping summaries of its results',
      );
    }
    const lines = function* (this: Journal): Generator<string> {
      for (const [id, summary] of entries) {
        const result = from === undefined ? summary : this.whole(id, summary, from);
        const entry: JournalEntry = { id, result };
        const request = this.index.requests.get(id);
        if (request) entry.request = request;
        const reply = this.index.replies.get(id);
        if (reply) entry.reply = reply;
        const proc = this.index.procs.get(id);
        if (proc) entry.proc = proc;
        lineIds.push(id);
        yield JSON.stringify(entry);
        if (isFinal(result.status) && !this.index.unpublished.has(id)) {
          lineIds.push('');
          yield JSON.stringify({ id, published: true });
        }
      }
    }.call(this);
    const places = new Map<string, Place>();
    try {
      rewriteAtomic(this.file, lines, (i, offset, length) => {
        const id = lineIds[i];
        if (id && this.index.onDisk.has(id)) places.set(id, { offset, length });
      });
    } finally {
      if (from !== undefined) closeSync(from);
    }
    // The rename replaced the file: an fd kept open would append to the old one.
    this.close();
    this.index.onDisk = places;
    this.lines = this.index.entries.size;
  }
}
