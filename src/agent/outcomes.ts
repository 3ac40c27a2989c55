/**
 * Where every outcome of a request ends: the ONE place that journals, audits, counts and publishes a
 * final result — run, rejected, repeated, interrupted by a restart or adopted from the broker — and
 * the progress (`scheduled`, `running`, live output) before it (docs/mqtt-api.md § Results).
 */
import type { IPublishPacket } from 'mqtt';
import type { Config } from '../config/load.js';
import { isFinal, rejected, type Rejection, type RequestRef, type Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import { ActionStats } from './action-stats.js';
import { AuditLog } from './audit.js';
import type { Origin } from './intake.js';
import type { Journal, StoredRequest } from './journal.js';
import type { OutputMessage } from './live-output.js';
import { ResultPublisher, type ReplyTo } from './results.js';
import type { Publisher } from './publisher.js';
import { RetainedResults } from './retained-results.js';
import { storedReply } from './restart-check.js';

/** What an accepted request's outcome needs to know of it. */
export interface Accepted {
  origin: Origin;
  ref: RequestRef;
  replyTo: ReplyTo | undefined;
  stored: StoredRequest;
}

export class Outcomes {
  /** Hears every final result once, as it is counted (the switches: agent/switches.ts); never throws into here. */
  onFinal: ((result: Result) => void) | undefined;
  private readonly results: ResultPublisher;
  private readonly audit: AuditLog;
  /** Every final result is counted there, once: the heartbeat's `stats` and its per-action figures. */
  private readonly stats: ActionStats;

  constructor(
    private readonly config: Config,
    topics: HostTopics,
    private readonly journal: Journal,
    sink: Publisher,
    private readonly log: Logger,
  ) {
    this.audit = new AuditLog(config.state_dir, config.security.audit, log);
    this.stats = new ActionStats(config, log.child({ module: 'stats' }));
    const retained = new RetainedResults(config.state_dir, log, () => journal.finalIds());
    this.results = new ResultPublisher(
      topics,
      sink,
      log,
      retained,
      (id) => this.remember(() => journal.markPublished(id)),
      (id) => journal.inOutbox(id),
    );
  }

  /** Reads what the audit log and the counters left in state_dir (the constructor does no I/O). */
  start(): void {
    this.audit.start();
    this.stats.start();
  }

  /** The reply target a delivery names (MQTT 5 Response Topic), checked (core/reply.ts). */
  replyToOf(packet: IPublishPacket): ReplyTo | undefined {
    return this.results.replyToOf(packet);
  }

  /** The heartbeat's figures: totals and per action. */
  figures(): { stats: ReturnType<ActionStats['totals']>; actions: ReturnType<ActionStats['actions']> } {
    return { stats: this.stats.totals(), actions: this.stats.actions() };
  }

  saveStats(): void {
    this.stats.save();
  }

  /**
   * The final result of a request that was accepted (run, failed, expired in its stagger group …).
   * `counted` false: not a command run (a cancel request's own answer, agent/cancel.ts).
   */
  finish(q: Omit<Accepted, 'stored'>, result: Result, counted = true): void {
    this.remember(() => this.journal.record(result, undefined, false));
    this.audit.write({ ...q.origin, decision: 'accepted', result });
    if (counted) this.count(result);
    this.log.info(
      {
        id: result.id,
        action: result.action,
        status: result.status,
        exit_code: result.exit_code,
        duration_ms: result.duration_ms,
      },
      'request finished',
    );
    this.results.final(result, q.replyTo);
  }

  /** `onIdTopic` false: the id's topic holds a result that must stay (a replay); see ResultPublisher.aside. */
  reject(
    ref: RequestRef,
    rejection: Rejection,
    replyTo: ReplyTo | undefined,
    origin: Origin,
    onIdTopic = true,
  ): void {
    const result = rejected(this.config.host, ref, rejection, new Date());
    this.audit.write({ ...origin, decision: 'rejected', result });
    this.count(result);
    this.log.info({ id: ref.id, action: ref.action, error_code: rejection.code }, 'request rejected');
    // Rejections are not journaled: nothing ran, so the same id may be sent again once fixed.
    if (onIdTopic) this.results.final(result, replyTo);
    else this.results.aside(result, replyTo);
  }

  /**
   * Not run because the agent is stopping: `rejected` / `shutting_down`, journaled as the id's final like
   * any result (and kept in the outbox until the broker has it). The broker's redelivery of the request
   * after the restart, or a re-send of the id, then gets this answer again and never runs it: one final
   * per id, never a rejection later replaced by a result (docs/mqtt-api.md § Error codes).
   */
  notRun(ref: RequestRef, error: string, replyTo: ReplyTo | undefined, origin: Origin): void {
    const result = rejected(this.config.host, ref, { code: 'shutting_down', error }, new Date());
    this.audit.write({ ...origin, decision: 'rejected', result });
    this.count(result);
    this.log.info({ id: ref.id, action: ref.action, error_code: 'shutting_down' }, 'request rejected');
    this.remember(() => this.journal.record(result, undefined, true, { reply: storedReply(replyTo) }));
    this.results.final(result, replyTo);
  }

  /**
   * A known id sent again: answered with its stored result, never run twice. `unsettled` says whether a
   * restart has not settled the id yet (then its retained result is left as it is: restart-check.ts).
   */
  repeat(id: string, replyTo: ReplyTo | undefined, origin: Origin, unsettled: (id: string) => boolean): void {
    const stored = this.journal.get(id);
    if (!stored) return;
    this.audit.write({ ...origin, decision: 'repeat', result: stored });
    this.log.info(
      { id, status: stored.status },
      'repeated id: answering with the stored result, not running it again',
    );
    if (isFinal(stored.status)) return this.results.final(stored, replyTo, false);
    // Not final yet: the reply topic (if any) gets the final result when it comes.
    this.results.replyLater(id, replyTo);
    if (unsettled(id)) return;
    if (stored.executed_at !== undefined || stored.status === 'scheduled') this.results.progress(stored);
  }

  /** A request the last stop cut short, reported `interrupted` (restart-check.ts). */
  interrupted(final: Result, replyTo: ReplyTo | undefined): void {
    this.remember(() => this.journal.record(final));
    this.count(final);
    this.results.final(final, replyTo);
  }

  /** A reboot's `rebooting`, journaled durably; settles once the broker has it (agent/reboots.ts). */
  rebooting(result: Result): Promise<void> {
    this.remember(() => this.journal.record(result));
    return this.results.progressAcked(result);
  }

  /** A reboot's final, decided after the agent started again (agent/reboots.ts). */
  rebooted(final: Result, replyTo: ReplyTo | undefined): void {
    this.remember(() => this.journal.record(final));
    this.count(final);
    this.log.info({ id: final.id, action: final.action, status: final.status }, 'reboot settled');
    this.results.final(final, replyTo);
  }

  /** The final the broker holds for an id the journal could not record as final; `answer`: a repeat waits for it. */
  adopted(id: string, final: Result, answer: boolean): void {
    this.log.warn(
      { id, status: final.status },
      'adopted the final result the broker holds for an id the journal could not record as final',
    );
    this.remember(() => {
      this.journal.record(final);
      this.journal.markPublished(id);
    });
    // A repeat came while it was unsettled: it is answered now (and its reply topic, if it named one).
    if (answer) this.results.final(final, undefined, false);
  }

  /** A staggered request told when it will run (and why it waits, if not just the interval). */
  scheduled(q: Accepted, result: Result, reason: string | undefined): void {
    this.remember(() => this.journal.record(result, q.stored));
    this.results.progress(result);
    this.log.info({ id: q.ref.id, action: q.ref.action, run_at: result.run_at, reason }, 'request scheduled');
  }

  /** `running`, published once a command has run for a moment (run-queue.ts). */
  progress(result: Result): void {
    this.results.progress(result);
  }

  output(msg: OutputMessage): void {
    this.results.output(msg);
  }

  /** Final results the broker never acknowledged before the last stop: published again. */
  flushOutbox(replyOf: (id: string) => ReplyTo | undefined): void {
    const pending = this.journal.outbox();
    if (pending.length > 0)
      this.log.info(
        { ids: pending.map((r) => r.id) },
        'publishing results the broker had not acknowledged before the last stop',
      );
    for (const r of pending) this.results.final(r, replyOf(r.id));
  }

  /** Journal writes after acceptance: a failure is logged, never thrown into the MQTT session. */
  remember(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.log.error({ err }, 'could not write the id journal in state_dir; the result is still published');
    }
  }

  private count(result: Result): void {
    this.stats.record(result);
    try {
      this.onFinal?.(result);
    } catch (err) {
      this.log.warn({ err, id: result.id }, 'a listener of final results failed');
    }
  }
}
