/**
 * What the id journal remembers in memory: each id's latest result (a summary when the whole result is
 * on disk), the requests of accepted ids, reply targets and processes while they matter, and the outbox
 * of finals the broker has not acknowledged. Its own module because the memory has rules of its own
 * (what is kept, for how long) apart from how journal.ts writes lines; it does no I/O.
 */
import { isFinal, type Result } from '../core/result.js';
import {
  isStoredProcess,
  isStoredReply,
  type JournalEntry,
  type StoredProcess,
  type StoredReply,
  type StoredRequest,
} from './journal-records.js';
import { summaryOf, type Place } from './journal-lines.js';

/** A record line longer than this keeps only its summary in memory; the whole result stays on disk. */
const SUMMARY_ABOVE_BYTES = 1024;

export class JournalIndex {
  /** Each id's latest result — a summary (outputs emptied) when its whole result is in `onDisk`. */
  readonly entries = new Map<string, Result>();
  /** Ids whose whole result is only on disk, and where its line is. */
  onDisk = new Map<string, Place>();
  readonly requests = new Map<string, StoredRequest>();
  /** Reply targets of ids whose final is not yet acknowledged; processes of ids not yet final. */
  readonly replies = new Map<string, StoredReply>();
  readonly procs = new Map<string, StoredProcess>();
  /** Final results the broker has not acknowledged yet: the outbox, published again after a restart. */
  readonly unpublished = new Set<string>();

  /** One line read back at open, at `place`; throws when it is not an entry. */
  replay(
    e: JournalEntry | { id: string; forget: true } | { id: string; published: true },
    place: Place,
  ): void {
    if ('published' in e) {
      this.unpublished.delete(e.id);
      return;
    }
    this.entries.delete(e.id); // re-insert: Map order is recency order
    this.onDisk.delete(e.id);
    this.unpublished.delete(e.id);
    if ('forget' in e) return;
    if (typeof e.result?.status !== 'string') throw new Error('not an entry');
    this.keepInMemory(e.id, e.result, place);
    if (isFinal(e.result.status)) this.unpublished.add(e.id);
    if (e.request) this.requests.set(e.id, e.request);
    else if (isFinal(e.result.status)) this.requests.delete(e.id);
    this.keepNotes(e.id, e.result, e.reply, e.proc);
  }

  /** Small results whole; a big one as a summary, its outputs left on disk at `place`. */
  private keepInMemory(id: string, result: Result, place: Place): void {
    if (place.length <= SUMMARY_ABOVE_BYTES) {
      this.entries.set(id, result);
      this.onDisk.delete(id);
      return;
    }
    this.entries.set(id, summaryOf(result));
    this.onDisk.set(id, place);
  }

  remember(
    result: Result,
    request: StoredRequest | undefined,
    reply: StoredReply | undefined,
    proc: StoredProcess | undefined,
    place: Place | undefined,
  ): void {
    const id = result.id;
    this.entries.delete(id);
    if (place) this.keepInMemory(id, result, place);
    else {
      this.onDisk.delete(id);
      this.entries.set(id, result);
    }
    if (isFinal(result.status)) this.unpublished.add(id);
    else this.unpublished.delete(id);
    if (request) this.requests.set(id, request);
    else if (isFinal(result.status)) this.requests.delete(id);
    this.keepNotes(id, result, reply, proc);
  }

  /** Bounded: a reply target only until the id's final is acknowledged, a process only until it is final. */
  private keepNotes(id: string, result: Result, reply: unknown, proc: unknown): void {
    if (isStoredReply(reply)) this.replies.set(id, reply);
    else this.replies.delete(id);
    if (!isFinal(result.status) && isStoredProcess(proc)) this.procs.set(id, proc);
    else this.procs.delete(id);
  }

  /** Forgets everything of the id; true when it had a result. */
  forget(id: string): boolean {
    this.requests.delete(id);
    this.unpublished.delete(id);
    this.onDisk.delete(id);
    this.replies.delete(id);
    this.procs.delete(id);
    return this.entries.delete(id);
  }

  /** Makes room for `keep` ids before a compaction rewrites the file from memory. */
  dropOldest(keep: number): void {
    // Only the oldest answered ids make room: an id still running or scheduled, or a final result the
    // broker has not acknowledged, stays however old — forgetting it would let a resend run it again
    // (docs/mqtt-api.md § The request object: a repeated id is never run twice).
    let excess = this.entries.size - keep;
    for (const [id, result] of this.entries) {
      if (excess <= 0) break;
      if (!isFinal(result.status) || this.unpublished.has(id)) continue;
      this.entries.delete(id);
      this.requests.delete(id);
      this.onDisk.delete(id);
      this.replies.delete(id);
      excess--;
    }
  }
}
