/**
 * The one home of counting: the pipeline feeds it every final result; the
 * heartbeat reads `stats` and `actions` from it. The counters live in
 * `state_dir/stats.json`, so a restart does not reset what Home Assistant
 * graphs; it is written at most once a heartbeat, and only after a change.
 */
import type { Config } from '../config/load.js';
import {
  emptyStats,
  figuresOf,
  pruneActions,
  recordResult,
  statsStateSchema,
  totalsOf,
  type ActionFigures,
  type Stats,
  type StatsState,
} from '../core/action-stats.js';
import type { Result } from '../core/result.js';
import type { Logger } from '../log.js';
import { JsonStateFile } from './state-file.js';

export class ActionStats {
  private readonly file: JsonStateFile<StatsState>;
  private state: StatsState = emptyStats();
  private readonly names: string[];
  private dirty = false;

  constructor(config: Pick<Config, 'state_dir' | 'actions'>, log: Logger) {
    this.names = Object.keys(config.actions);
    this.file = new JsonStateFile(
      config.state_dir,
      'stats.json',
      statsStateSchema,
      log,
      'the saved action statistics',
    );
  }

  /** Reads the saved counters (the constructor does no I/O). */
  start(): void {
    // A corrupt file is moved aside by JsonStateFile and the counters start again from zero.
    this.state = this.file.read(emptyStats());
    this.dirty = pruneActions(this.state, this.names);
  }

  /** A final result (progress results are ignored). */
  record(result: Result, now = new Date()): void {
    if (recordResult(this.state, result, (name) => this.names.includes(name), now)) this.dirty = true;
  }

  /** The heartbeat's `stats` (the contract's fields). */
  totals(): Stats {
    return totalsOf(this.state);
  }

  /** The heartbeat's `actions` extension: every configured action. */
  actions(): Record<string, ActionFigures> {
    return figuresOf(this.state, this.names);
  }

  /** Writes the counters if they changed since the last save; never throws (a failed write is logged). */
  save(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.file.write(this.state);
  }
}
