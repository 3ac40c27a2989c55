/**
 * Cancel requests (docs/mqtt-api.md § Cancel): `{"cancel": ID}` on `P/H/cmd` stops request ID of this
 * host — a running one is killed with its process group (a deployment rolls back), a queued or
 * scheduled one never starts — and ID ends `cancelled`. The cancel request is journaled and answered
 * like any request: `succeeded` once its target ended `cancelled`, `rejected` / `not_found` when there
 * was nothing to cancel. It needs a signature wherever the cancelled action would.
 */
import type { Config } from '../config/load.js';
import { cancelAnswer, cancelledBeforeStart, CANCEL_OLDEST } from '../core/cancel.js';
import type { Request } from '../core/request.js';
import {
  isFinal,
  makeResult,
  rejected,
  type Rejection,
  type RequestRef,
  type Result,
} from '../core/result.js';
import type { Logger } from '../log.js';
import type { Acceptance } from './accept.js';
import type { Origin } from './intake.js';
import type { Journal } from './journal.js';
import type { Outcomes } from './outcomes.js';
import { storedReply } from './restart-check.js';
import type { ReplyTo } from './results.js';
import type { RunQueue } from './run-queue.js';
import type { StaggeredRuns } from './staggered-runs.js';

/** The cancel request itself: what its own answer needs. */
interface Self {
  origin: Origin;
  ref: RequestRef;
  replyTo: ReplyTo | undefined;
}

/** Cancel requests waiting for their targets to end: beyond this many, a new one is `busy`. */
const MAX_WAITING = 100;

export class Cancels {
  /** Cancel requests waiting for their target to end (killed, rolled back) or to be queued, by their own id. */
  private readonly waiting = new Set<string>();

  constructor(
    private readonly config: Config,
    private readonly journal: Journal,
    private readonly outcomes: Outcomes,
    private readonly runs: RunQueue,
    private readonly staggered: StaggeredRuns,
    private readonly acceptance: Acceptance,
    private readonly log: Logger,
  ) {}

  /** A new cancel request (intake.ts has answered known ids already); a Rejection when nothing is cancelled. */
  accept(
    req: Request,
    ref: RequestRef,
    replyTo: ReplyTo | undefined,
    now: number,
    origin: Origin,
  ): { ok: true } | Rejection {
    const host = this.config.host;
    const asked = req.cancel ?? '';
    const target = asked === CANCEL_OLDEST ? this.runs.control('oldest')?.id : asked;
    if (target === undefined) return notFound(`nothing is running on ${host}, so there is nothing to cancel`);
    if (this.waiting.has(target))
      return {
        code: 'invalid_request',
        error: `${target} is a cancel request; a cancel cannot be cancelled — it ends when its target has`,
      };
    // Only this host's journal: another host's ids are unknown here, whatever the sender says.
    const entry = this.journal.get(target);
    if (entry === undefined)
      return notFound(
        `no request ${target} on ${host} — ids are per host: send the cancel to the host that runs it`,
      );
    if (isFinal(entry.status))
      return notFound(`request ${target} already ended ${entry.status}; there is nothing to cancel`);
    // Not final and no action: a cancel request not answered yet (one cut short by a restart).
    if (entry.action === null)
      return notFound(`request ${target} runs no action of ${host}; there is nothing to cancel`);
    const action = this.config.actions[entry.action];
    const privileged = action?.sudo ?? this.config.execution.sudo;
    // Signed where the cancelled action's own request would have to be (core/admission.ts).
    const refused = this.acceptance.admitFor(req, entry.action, privileged, replyTo, now);
    if (refused) return refused;
    if (this.waiting.size >= MAX_WAITING)
      return {
        code: 'busy',
        error: `${MAX_WAITING} cancel requests are waiting for their targets to end — try again in a moment`,
      };

    const self: Self = { origin, ref, replyTo };
    if (this.act(self, target)) return { ok: true };
    // Accepted a moment ago, its record still being synced: it is acted on once it is queued.
    const syncing = this.acceptance.syncingOf(target);
    if (!syncing)
      return notFound(
        `request ${target} is not running or scheduled on ${host} (it is being settled after a restart) — send the cancel again in a moment`,
      );
    this.journalSelf(self);
    this.waiting.add(ref.id);
    void syncing.then(() => {
      this.waiting.delete(ref.id);
      if (this.act(self, target, false)) return;
      // Refused meanwhile (its journal record could not be written): it ended without running.
      const ended = this.journal.get(target);
      const why = `request ${target} ${ended && isFinal(ended.status) ? `ended ${ended.status}` : 'was not queued'} before the cancel took effect; nothing was cancelled`;
      this.outcomes.finish(self, rejected(host, ref, { code: 'not_found', error: why }, new Date()), false);
    });
    return { ok: true };
  }

  /**
   * Cancels `target` if it runs, waits for a slot or is scheduled; false when it does none of these.
   * `journal`: record the cancel request first (false when it was recorded already).
   */
  private act(self: Self, target: string, journal = true): boolean {
    const run = this.runs.control(target);
    const held = run ? undefined : (this.runs.withdraw(target) ?? this.staggered.withdraw(target));
    if (!run && !held) return false;
    if (journal) this.journalSelf(self);
    this.log.info({ id: self.ref.id, target }, 'cancelling a request');
    if (held) {
      const ended = cancelledBeforeStart(this.config.host, held.ref, self.ref.id, new Date());
      this.outcomes.finish(held, ended);
      this.answer(self, ended);
    } else if (run) {
      this.waiting.add(self.ref.id);
      run.cancel(self.ref.id);
      void run.ended().then((final) => {
        this.waiting.delete(self.ref.id);
        this.answer(self, final);
      });
    }
    return true;
  }

  /** The cancel request's own record: journaled like any accepted request, so its id never acts twice. */
  private journalSelf(self: Self): void {
    this.outcomes.remember(() =>
      this.journal.record(makeResult(this.config.host, self.ref, { status: 'running' }), undefined, false, {
        reply: storedReply(self.replyTo),
      }),
    );
  }

  /** The cancel request's own final (core/cancel.ts); not counted as a command run. */
  private answer(
    self: { origin: Origin; ref: RequestRef; replyTo: ReplyTo | undefined },
    target: Result,
  ): void {
    this.outcomes.finish(self, cancelAnswer(this.config.host, self.ref, target, new Date()), false);
  }
}

function notFound(error: string): Rejection {
  return { code: 'not_found', error };
}
