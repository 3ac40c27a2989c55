/**
 * The replay set: every signed id the agent accepted, kept until its `ts` + `security.window` has
 * passed (after that its signature is expired anyway), in `state_dir/signed-ids.jsonl` so a restart
 * does not forget it (docs/security.md § Signed requests). Bounded by the window, not by a count of
 * newer requests: when it holds `cap` live ids it refuses new ones rather than forgetting one that
 * could still be replayed.
 */
import { closeSync, fsync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { REQUEST_ID_RE } from '../core/names.js';
import { ensureWritableDir, writeAtomic } from './state-file.js';

/** 100,000 ids: ~330 signed requests a second sustained over the default 5-minute window. */
export const SIGNED_IDS_CAP = 100_000;

export class SignedIds {
  /** id → the ts it was signed with. */
  private readonly ids = new Map<string, number>();
  private readonly file: string;
  private loaded = false;
  /** The file could not be read: ids may be missing, so no signed request is accepted (`full`). */
  private unreadable = false;
  private lines = 0;

  constructor(
    private readonly dir: string,
    /** security.window: a signed id is valid while |now - ts| <= window. */
    private readonly windowMs: number,
    private readonly log: Logger,
    private readonly cap = SIGNED_IDS_CAP,
  ) {
    this.file = path.join(dir, 'signed-ids.jsonl');
  }

  /** Used within its window (accepted signed, and its ts + window not yet passed). */
  has(id: string, now: number): boolean {
    this.load(now);
    const ts = this.ids.get(id);
    return ts !== undefined && now <= ts + this.windowMs;
  }

  /** No room for one more live id (after dropping the ones whose window has passed). */
  full(now: number): boolean {
    this.load(now);
    if (this.unreadable) return true;
    if (this.ids.size < this.cap) return false;
    this.prune(now);
    return this.ids.size >= this.cap;
  }

  /**
   * Remembers an accepted signed id: written now (a crash of the agent keeps it), and durable when
   * the promise settles. Throws when it cannot be written: the caller must then refuse the request.
   */
  remember(id: string, ts: number, now: number): Promise<void> {
    this.load(now);
    const fd = openSync(this.file, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ id, ts })}\n`);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.ids.set(id, ts);
    this.lines++;
    const synced = new Promise<void>((resolve, reject) =>
      fsync(fd, (err) => {
        closeSync(fd);
        if (err) reject(err);
        else resolve();
      }),
    );
    if (this.lines > 2 * this.ids.size + 1000) {
      try {
        this.compact(now);
      } catch (err) {
        this.log.warn({ err, file: this.file }, 'could not compact the replay set of signed ids');
      }
    }
    return synced;
  }

  /**
   * An accepted signed id that never started (the journal refused it, or the agent stopped first) is
   * released: its sender was told to send the same request again, which must not be `replayed`. Best
   * effort on disk: if the release cannot be written, a restart still refuses the retry as `replayed`.
   */
  release(id: string): void {
    if (!this.ids.delete(id)) return;
    try {
      const fd = openSync(this.file, 'a', 0o600);
      try {
        writeSync(fd, `${JSON.stringify({ id, released: true })}\n`);
      } finally {
        closeSync(fd);
      }
      this.lines++;
    } catch (err) {
      this.log.warn({ err, id }, 'could not record the release of a signed id that never ran');
    }
  }

  get size(): number {
    return this.ids.size;
  }

  private load(now: number): void {
    if (this.loaded) return;
    this.loaded = true;
    let text = '';
    try {
      ensureWritableDir(this.dir);
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.unreadable = true;
      this.log.error(
        { err, file: this.file },
        'cannot read the replay set of signed ids; refusing signed requests (busy) until the agent restarts with it readable',
      );
      return;
    }
    let bad = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        const e = JSON.parse(line) as { id?: unknown; ts?: unknown; released?: unknown };
        // Written by this agent, but checked like anything in state_dir.
        if (typeof e.id !== 'string' || !REQUEST_ID_RE.test(e.id)) throw new Error('not an entry');
        if (e.released === true) {
          this.ids.delete(e.id);
          continue;
        }
        if (!Number.isSafeInteger(e.ts)) throw new Error('not an entry');
        this.ids.set(e.id, e.ts as number);
      } catch {
        bad++;
      }
    }
    // A torn last line after a crash is expected; more means someone else wrote here.
    if (bad > 1)
      this.log.warn(
        { file: this.file, badLines: bad },
        'the replay set had unreadable lines; they were dropped',
      );
    try {
      this.compact(now);
    } catch (err) {
      // The appends may still work; if not, each signed request is refused as it comes.
      this.log.warn({ err, file: this.file }, 'could not compact the replay set of signed ids');
    }
  }

  private prune(now: number): void {
    for (const [id, ts] of this.ids) if (now > ts + this.windowMs) this.ids.delete(id);
  }

  /** Rewrites the file with the live ids only. */
  private compact(now: number): void {
    this.prune(now);
    const text = [...this.ids].map(([id, ts]) => JSON.stringify({ id, ts })).join('\n');
    writeAtomic(this.file, text === '' ? '' : `${text}\n`);
    this.lines = this.ids.size;
  }
}
