/**
 * This host's record of its stagger groups in state_dir (stagger.json): the records it counted survive
 * a restart, so a decision taken while the broker is unreachable has something to go on
 * (docs/stagger.md § Durability and outages). Its own module so that the file's layout has one owner.
 */
import { z } from 'zod';
import { readSavedStagger, type StaggerRecord } from '../core/stagger.js';
import type { Logger } from '../log.js';
import type { GroupView } from './stagger-intake.js';
import { JsonStateFile } from './state-file.js';

export class StaggerStore {
  private readonly file: JsonStateFile<unknown>;

  constructor(
    stateDir: string,
    private readonly host: string,
    log: Logger,
  ) {
    this.file = new JsonStateFile(
      stateDir,
      'stagger.json',
      z.unknown(),
      log,
      "this host's record of its stagger groups",
    );
  }

  get path(): string {
    return this.file.file;
  }

  read(): ReturnType<typeof readSavedStagger> {
    // Checked again like records that just arrived: an older version saved whatever it was sent.
    return readSavedStagger(this.file.read(undefined), this.host, Date.now());
  }

  write(groups: ReadonlyMap<string, GroupView>): void {
    const saved: Record<string, Record<string, StaggerRecord>> = {};
    for (const [k, g] of groups) if (g.records.size > 0) saved[k] = Object.fromEntries(g.records);
    this.file.write({ version: 2, groups: saved });
  }
}
