/**
 * After a restart: the requests the journal left unfinished are settled once connected — scheduled ones
 * resume, the rest were cut short and are reported `interrupted` (never re-run), unless the broker holds
 * a final for them the journal could not record (restart-check.ts; docs/mqtt-api.md § Restarts).
 */
import type { Config } from '../config/load.js';
import type { Request } from '../core/request.js';
import { makeResult, type Rejection, type RequestRef, type Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import type { Origin } from './intake.js';
import type { Journal, StoredRequest } from './journal.js';
import type { Outcomes } from './outcomes.js';
import { replyFromJournal, retainedFinals, stopLeftovers, type ReadRetained } from './restart-check.js';
import type { ReplyTo } from './results.js';

/** The acceptance step, for a resumed scheduled request (accept.ts). */
export type AcceptResumed = (
  req: Request,
  ref: RequestRef,
  replyTo: ReplyTo | undefined,
  acceptedAt: number,
  origin: Origin,
  resumed: Result,
) => { ok: true } | Rejection;

export class Restarts {
  /**
   * Ids a restart has not settled yet (true once repeated meanwhile): a repeat must not publish their
   * journaled `running` over a final the journal missed (restart-check.ts).
   */
  private readonly unsettled = new Map<string, boolean>();

  constructor(
    private readonly config: Config,
    private readonly topics: HostTopics,
    private readonly journal: Journal,
    private readonly outcomes: Outcomes,
    private readonly accept: AcceptResumed,
    /** A `rebooting` id: the boot decides it, never a re-run (reboots.ts). */
    private readonly settleReboot?: (r: Result, replyTo: ReplyTo | undefined) => void,
  ) {}

  /** At start, before connecting: the ids the journal left running wait for resume() to settle them. */
  restarting(unfinished: Result[]): void {
    for (const r of unfinished) if (r.status !== 'scheduled') this.unsettled.set(r.id, false);
  }

  /** A repeat of an id not settled yet: remembered, so the settled final answers it; false when settled. */
  holdRepeat(id: string): boolean {
    if (!this.unsettled.has(id)) return false;
    this.unsettled.set(id, true);
    return true;
  }

  /**
   * Requests a restart found in the journal: scheduled ones are resumed, the rest were cut short —
   * unless the broker holds a final for them the journal could not record (restart-check.ts).
   */
  async resume(unfinished: Result[], readRetained: ReadRetained): Promise<void> {
    try {
      await this.settle(unfinished, readRetained);
    } finally {
      this.unsettled.clear();
    }
  }

  private async settle(unfinished: Result[], readRetained: ReadRetained): Promise<void> {
    const cut = unfinished.filter((r) => r.status !== 'scheduled').map((r) => r.id);
    const published = await retainedFinals(
      cut,
      this.config.host,
      (id) => this.topics.resultFor(id),
      readRetained,
    );
    for (const r of unfinished) {
      const stored = this.journal.request(r.id);
      if (r.status === 'scheduled' && stored) {
        this.resumeScheduled(r, stored);
        continue;
      }
      const final = published.get(r.id);
      if (final) {
        this.outcomes.adopted(r.id, final, this.unsettled.get(r.id) === true);
        continue;
      }
      if (r.status === 'rebooting' && this.settleReboot) {
        // Whole (its steps' output too): open() gives a summary of a long line.
        this.settleReboot(this.journal.get(r.id) ?? r, this.replyOf(r.id));
        continue;
      }
      await this.reportInterrupted(r);
    }
  }

  private resumeScheduled(r: Result, stored: StoredRequest): void {
    const ref: RequestRef = { id: r.id, action: r.action, transaction: r.transaction };
    const req: Request = {
      id: r.id,
      generatedId: false,
      press: false,
      action: stored.action,
      params: stored.params,
      command: undefined,
      timeoutMs: stored.timeoutMs,
      ts: undefined,
      ttl: undefined,
      sig: undefined,
      transaction: r.transaction,
    };
    const origin: Origin = { topic: '(resumed after a restart)', client: undefined };
    const accepted = this.accept(req, ref, this.replyOf(r.id), stored.acceptedAt, origin, r);
    if (!('code' in accepted)) return;
    // The config changed under a scheduled request: it cannot run as asked.
    this.journal.forget(r.id);
    this.outcomes.reject(ref, accepted, this.replyOf(r.id), origin);
  }

  private async reportInterrupted(r: Result): Promise<void> {
    const ref: RequestRef = { id: r.id, action: r.action, transaction: r.transaction };
    // Stopped before it is reported: `interrupted` means nothing of it runs on (docs/mqtt-api.md).
    const stopped = await stopLeftovers(this.journal.processOf(r.id), r.executed_at !== undefined);
    const final = makeResult(this.config.host, ref, {
      status: 'interrupted',
      error_code: 'interrupted',
      error: `the agent stopped or died while this request was accepted or running; ${stopped}; it was not re-run — check the host, then send a new request`,
      executed_at: r.executed_at,
      completed_at: new Date().toISOString(),
    });
    this.outcomes.interrupted(final, this.replyOf(r.id));
  }

  /** The journaled reply target of an id, checked again: it was read from a file. */
  replyOf(id: string): ReplyTo | undefined {
    return replyFromJournal(this.journal.replyOf(id), this.topics.replyBase);
  }
}
