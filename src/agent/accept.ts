/**
 * Acceptance: a new request resolved against the whitelist, admitted (core/admission.ts: signature,
 * freshness, load), its paths and deny-list checked, journaled durably, then queued — or handed to its
 * stagger group. Nothing runs before its record is on disk (docs/mqtt-api.md § Ids).
 */
import type { Config } from '../config/load.js';
import { admit, admitLoad } from '../core/admission.js';
import type { Request } from '../core/request.js';
import { resolveRequest } from '../core/resolve.js';
import { makeResult, type Rejection, type RequestRef, type Result } from '../core/result.js';
import type { Logger } from '../log.js';
import type { Origin } from './intake.js';
import type { Journal, StoredRequest } from './journal.js';
import { checkJob } from './job-check.js';
import type { Outcomes } from './outcomes.js';
import { storedReply } from './restart-check.js';
import type { ReplyTo } from './results.js';
import { staggerOf } from './run-job.js';
import type { Queued, RunQueue } from './run-queue.js';
import { SignedIds } from './signed-ids.js';
import type { StaggeredRuns } from './staggered-runs.js';
import { staleness } from '../core/freshness.js';

export class Acceptance {
  private open = true;
  /** Accepted requests waiting for their journal record's fsync (Journal.recordDurable), by id. */
  private readonly syncing = new Map<string, Promise<void>>();
  /** Signed ids accepted within their window (docs/security.md § Signed requests). */
  private readonly signedIds: SignedIds;

  constructor(
    private readonly config: Config,
    private readonly journal: Journal,
    private readonly outcomes: Outcomes,
    private readonly runs: RunQueue,
    private readonly staggered: StaggeredRuns,
    private readonly log: Logger,
  ) {
    this.signedIds = new SignedIds(
      config.state_dir,
      config.security.window,
      log.child({ module: 'signed-ids' }),
    );
  }

  /** false once the agent began to stop. */
  get accepting(): boolean {
    return this.open;
  }

  /** Stop accepting; resolves once the accepted ones whose records were being synced are answered. */
  async close(): Promise<void> {
    this.open = false;
    await Promise.allSettled([...this.syncing.values()]);
  }

  /** Settles once accepted request `id`, whose record is being synced, is queued (or refused). */
  syncingOf(id: string): Promise<void> | undefined {
    return this.syncing.get(id);
  }

  /** Resolve, admit, check, journal, and queue (or hand to the stagger); a Rejection when it cannot be accepted. */
  accept(
    req: Request,
    ref: RequestRef,
    replyTo: ReplyTo | undefined,
    acceptedAt: number,
    origin: Origin,
    resumed?: Result,
  ): { ok: true } | Rejection {
    const resolved = resolveRequest(req, this.config.actions, {
      sudo: this.config.execution.sudo,
      timeoutMs: this.config.execution.timeout,
      limits: this.config.security.limits,
    });
    if (!resolved.ok) {
      ref.action = resolved.action;
      return resolved.rejection;
    }
    ref.action = resolved.job.action;
    if (!resumed) {
      const refused = admit({
        request: req,
        host: this.config.host,
        action: resolved.job.action,
        privileged: resolved.job.sudo,
        key: this.config.signingKey,
        policy: this.config.security,
        now: acceptedAt,
        replyTo,
        used: req.sig !== undefined && this.signedIds.has(req.id, acceptedAt),
        full: req.sig !== undefined && this.signedIds.full(acceptedAt),
      });
      if (refused) return refused;
      // A late request never runs: ts + ttl, or ts + the action's max_age (docs/mqtt-api.md § Late requests).
      // After admission, so a signed one hears about its signature's window first.
      const late = staleness(
        req,
        acceptedAt,
        this.config.actions[resolved.job.action]?.max_age ?? this.config.execution.max_age,
      );
      if (late) return late;
    }
    // Path params resolved on the file system; the deny-list over every command it may run (run-job checks again).
    const checked = checkJob(resolved.job, this.config);
    if (!checked.ok) return checked.rejection;
    const job = checked.job;
    const stagger = staggerOf(this.config.actions[job.action]);
    const busy = admitLoad({
      host: this.config.host,
      source: this.config.source,
      enabled: this.config.execution.enabled,
      staggered: stagger !== undefined,
      resumed: resumed !== undefined,
      running: this.runs.runningCount,
      waiting: (stagger ? this.staggered.pendingCount() : this.runs.waitingCount) + this.syncing.size,
      concurrency: this.config.execution.concurrency,
      queue: this.config.execution.queue,
    });
    if (busy) return busy;
    const stored: StoredRequest = {
      action: job.action,
      params: job.params,
      timeoutMs: req.timeoutMs,
      acceptedAt,
    };
    const q: Queued = { origin, ref, job, replyTo, stored, stagger };
    let durable: Promise<void> | undefined;
    try {
      durable = this.journalAccepted(q, req, acceptedAt, resumed !== undefined);
    } catch (err) {
      this.signedIds.release(ref.id);
      return this.journalRefusal(ref.id, err);
    }
    if (durable === undefined) {
      this.enqueue(q, acceptedAt);
      return { ok: true };
    }
    // Nothing runs before its record is on disk; meanwhile the main thread takes the next request.
    const synced = durable.then(
      () => this.enqueue(q, acceptedAt),
      (err: unknown) => {
        this.outcomes.remember(() => this.journal.forget(ref.id));
        this.signedIds.release(ref.id);
        this.outcomes.reject(ref, this.journalRefusal(ref.id, err), replyTo, origin);
      },
    );
    this.syncing.set(ref.id, synced);
    void synced.finally(() => this.syncing.delete(ref.id));
    return { ok: true };
  }

  /**
   * Admission for a request that runs nothing itself (a cancel: cancel.ts), as if it ran `action`:
   * signed wherever that action's own request would have to be, fresh, and a signed id used once.
   */
  admitFor(
    req: Request,
    action: string,
    privileged: boolean,
    replyTo: ReplyTo | undefined,
    now: number,
  ): Rejection | undefined {
    const signed = req.sig !== undefined;
    const refused = admit({
      request: req,
      host: this.config.host,
      action,
      privileged,
      key: this.config.signingKey,
      policy: this.config.security,
      now,
      replyTo,
      used: signed && this.signedIds.has(req.id, now),
      full: signed && this.signedIds.full(now),
    });
    if (refused) return refused;
    const late = staleness(req, now, this.config.actions[action]?.max_age ?? this.config.execution.max_age);
    if (late) return late;
    if (!signed || req.ts === undefined) return undefined;
    try {
      // Written now; a crash before its fsync could at worst let the same cancel be replayed, and
      // cancelling twice finds its target already ended.
      this.signedIds
        .remember(req.id, req.ts, now)
        .catch((err: unknown) => this.log.warn({ err, id: req.id }, 'could not sync a signed id'));
    } catch (err) {
      return this.journalRefusal(req.id, err);
    }
    return undefined;
  }

  /** The records that make an accepted request durable; resolves once they are on disk. Throws when they cannot be written. */
  private journalAccepted(
    q: Queued,
    req: Request,
    acceptedAt: number,
    resumed: boolean,
  ): Promise<void> | undefined {
    const { ref, replyTo, stored, stagger } = q;
    let durable: Promise<void> | undefined;
    // A signed id is remembered for its whole window before it can run: it is never valid twice.
    const signed =
      !resumed && req.sig !== undefined && req.ts !== undefined
        ? this.signedIds.remember(req.id, req.ts, acceptedAt)
        : undefined;
    // Journaled before it can run: after a crash this id is reported, never re-run. A staggered one is
    // journaled as scheduled, with what is needed to run it later: it survives a restart.
    if (stagger && !resumed)
      durable = this.journal.recordDurable(
        makeResult(this.config.host, ref, {
          status: 'scheduled',
          run_at: new Date(acceptedAt).toISOString(),
        }),
        stored,
        { reply: storedReply(replyTo) },
      );
    else if (!stagger)
      durable = this.journal.recordDurable(
        makeResult(this.config.host, ref, { status: 'running' }),
        undefined,
        {
          reply: storedReply(replyTo),
        },
      );
    if (signed) durable = Promise.all([durable, signed]).then(() => undefined);
    return durable;
  }

  private enqueue(q: Queued, acceptedAt: number): void {
    // The agent began to stop while this one's record was being synced: like a queued request, never started.
    if (!this.open) return this.neverStarted(q);
    if (q.stagger) return this.staggered.submit(q, q.stagger, acceptedAt);
    this.runs.push(q);
  }

  /** Accepted but stopped before it started: answered `shutting_down`, which becomes the id's one final. */
  neverStarted(q: Queued): void {
    this.outcomes.notRun(
      q.ref,
      'the agent stopped before this request could start; it was not run — send it again with a new id once the host is back online',
      q.replyTo,
      q.origin,
    );
  }

  private journalRefusal(id: string, err: unknown): Rejection {
    this.log.error({ err, id }, 'cannot write the id journal; refusing requests until it can');
    return {
      code: 'busy',
      error: `the agent cannot write its journal in ${this.config.state_dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}), so it cannot promise to run this only once — free space or fix permissions there, then send it again`,
    };
  }
}
