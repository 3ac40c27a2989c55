/**
 * Which per-id results this agent has left retained on `P/H/result/ID`, oldest first, so it can clear
 * its own beyond the last 100 (docs/mqtt-api.md § Results) — rejections included, which the id journal
 * never holds, and across restarts. Kept in `state_dir/retained-results.log`: one line per change
 * (`+ID` published, `-ID` cleared), appended without fsync (a lost line after a power cut is one
 * retained topic left to its MQTT 5 expiry), rewritten atomically when it grows past a bound.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REQUEST_ID_RE } from '../core/names.js';
import type { Logger } from '../log.js';
import { moveAside, writeAtomic } from './state-file.js';

export const RETAINED_RESULTS_FILE = 'retained-results.log';

export class RetainedResults {
  /** Insertion order is age: the first is the oldest. */
  private ids: Set<string> | undefined;
  private lines = 0;
  private readonly file: string;
  private failed = false;

  constructor(
    dir: string,
    private readonly log: Logger,
    /** The ids the journal holds final results for, oldest first: the start when the file does not exist yet. */
    private readonly seed: () => string[],
    private readonly keep = 100,
  ) {
    this.file = path.join(dir, RETAINED_RESULTS_FILE);
  }

  /** `id` was published retained just now: it becomes the newest. Returns the ids to clear, oldest first. */
  published(id: string): string[] {
    const ids = this.load();
    ids.delete(id);
    ids.add(id);
    this.append(`+${id}\n`);
    const excess: string[] = [];
    for (const old of ids) {
      if (ids.size - excess.length <= this.keep) break;
      excess.push(old);
    }
    for (const old of excess) {
      ids.delete(old);
      this.append(`-${old}\n`);
    }
    if (this.lines > this.keep * 10) this.compact(ids);
    return excess;
  }

  private load(): Set<string> {
    if (this.ids) return this.ids;
    const ids = new Set<string>();
    let text: string | undefined;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(
          { file: this.file, err: (err as Error).message },
          'could not read the record of retained results; starting from the id journal',
        );
    }
    if (text === undefined) {
      for (const id of this.seed().slice(-this.keep)) ids.add(id);
    } else {
      let bad = 0;
      const lines = text.split('\n');
      // What follows the last newline is a line torn by a crash (or nothing): never trusted.
      lines.pop();
      for (const line of lines) {
        if (line === '') continue;
        const id = line.slice(1);
        // Anything that is not a marked request id is skipped, never trusted as a topic.
        if (!REQUEST_ID_RE.test(id) || (line[0] !== '+' && line[0] !== '-')) {
          bad++;
          continue;
        }
        ids.delete(id);
        if (line[0] === '+') ids.add(id);
      }
      if (bad > 0) {
        const aside = moveAside(this.file);
        this.log.warn(
          { file: this.file, movedTo: aside, badLines: bad },
          'the record of retained results had unreadable lines; moved it aside and kept what was readable',
        );
      }
    }
    this.ids = ids;
    this.compact(ids);
    return ids;
  }

  private append(line: string): void {
    if (this.failed) return;
    try {
      appendFileSync(this.file, line, { mode: 0o600 });
      this.lines++;
    } catch (err) {
      this.writeFailed(err);
    }
  }

  private compact(ids: Set<string>): void {
    try {
      writeAtomic(this.file, [...ids].map((id) => `+${id}\n`).join(''));
      this.lines = ids.size;
      this.failed = false;
    } catch (err) {
      this.writeFailed(err);
    }
  }

  /** Memory still bounds what is retained while this process runs; only the restart loses track. */
  private writeFailed(err: unknown): void {
    if (!this.failed)
      this.log.warn(
        { file: this.file, err: (err as Error).message },
        'could not write the record of retained results in state_dir; results beyond the last 100 may outlive a restart until their expiry',
      );
    this.failed = true;
  }
}
