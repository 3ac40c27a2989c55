/**
 * intake → whitelist → journal → (stagger) → queue → runner → results.
 * The promises: exactly the whitelisted argv runs, at most once per id, and
 * every request gets an answer.
 */
import { randomUUID } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { Config } from '../config/load.js';
import { ACTION_NAME_RE } from '../core/names.js';
import { parseDelivery, type Request } from '../core/request.js';
import { resolveRequest, type Job } from '../core/resolve.js';
import {
  isFinal,
  makeResult,
  rejected,
  type Rejection,
  type RequestRef,
  type Result,
} from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import { admit } from '../core/admission.js';
import { staleness } from '../core/freshness.js';
import { AuditLog } from './audit.js';
import { AUTHENTICATED_USER_PROPERTY } from '../core/sender.js';
import { LiveOutput } from './live-output.js';
import type { Logger } from '../log.js';
import { runHealthCheck } from './health.js';
import { checkJob } from './job-check.js';
import { runJob, staggerOf } from './run-job.js';
import type { Journal, StoredRequest } from './journal.js';
import { ResultPublisher, type ReplyTo } from './results.js';
import type { Publisher } from './publisher.js';
import { RetainedResults } from './retained-results.js';
import { StaggerCoordinator, type StaggerConfig, type StaggerItem } from './stagger.js';
import { ActionStats } from './action-stats.js';
import { SignedIds } from './signed-ids.js';
import {
  processStart,
  replyFromJournal,
  retainedFinals,
  stopLeftovers,
  storedReply,
  type ReadRetained,
} from './restart-check.js';
import type { Isolation } from '../exec/wrap.js';

/** Where a request came from, for the audit log. */
interface Origin {
  topic: string;
  client: string | undefined;
  /** What the sender says about itself (user property `client_id`): unproven. */
  claimed?: string | undefined;
}

interface Queued {
  origin: Origin;
  ref: RequestRef;
  job: Job;
  replyTo: ReplyTo | undefined;
  stored: StoredRequest;
  stagger: StaggerConfig | undefined;
  /** How a staggered run was decided, when that matters (an outage). */
  note?: string | undefined;
}

/** How long a command runs before its `running` result is published (CONTRACT.md: 1 s, sooner allowed). */
const RUNNING_ANNOUNCE_MS = 1000;

/** What the stagger coordinator holds: a queued request of an action with `stagger`. */
type Staggered = Queued & StaggerItem;

/** Told when a command of an action starts, prints and ends (the update entity's in_progress: agent/updates.ts). */
export interface JobObserver {
  started(action: string): void;
  output(action: string, chunk: Buffer): void;
  ended(action: string): void;
}

export class Pipeline {
  /** At most one, set by the agent before start; its exceptions are logged, never thrown into a run. */
  observer: JobObserver | undefined;
  private readonly queue: Queued[] = [];
  private readonly running = new Map<string, AbortController>();
  private readonly idle: (() => void)[] = [];
  private readonly results: ResultPublisher;
  private readonly audit: AuditLog;
  readonly stagger: StaggerCoordinator<Staggered>;
  private accepting = true;
  /** Accepted requests waiting for their journal record's fsync (Journal.recordDurable). */
  private readonly syncing = new Set<Promise<void>>();
  /** Every final result is counted there, once: the heartbeat's `stats` and its per-action figures. */
  readonly stats: ActionStats;
  /** Signed ids accepted within their window (docs/security.md § Signed requests). */
  private readonly signedIds: SignedIds;
  /**
   * Ids a restart has not settled yet (true once repeated meanwhile): a repeat must not publish their
   * journaled `running` over a final the journal missed (restart-check.ts).
   */
  private readonly unsettled = new Map<string, boolean>();

  constructor(
    private readonly config: Config,
    private readonly topics: HostTopics,
    private readonly journal: Journal,
    sink: Publisher,
    private readonly log: Logger,
    /** The params a press (HA's button) runs with: the values HA's select/number entities hold. */
    private readonly pressParams: (action: string) => Record<string, string> = () => ({}),
    isConnected: () => boolean,
    /** Who runs the commands (docs/security.md § Commands run as another user). */
    private readonly isolation?: Isolation,
  ) {
    this.audit = new AuditLog(config.state_dir, config.security.audit, log);
    this.stats = new ActionStats(config, log.child({ module: 'stats' }));
    this.signedIds = new SignedIds(
      config.state_dir,
      config.security.window,
      log.child({ module: 'signed-ids' }),
    );
    const retained = new RetainedResults(config.state_dir, log, () => journal.finalIds());
    this.results = new ResultPublisher(topics, sink, log, retained, (id) =>
      this.remember(() => journal.markPublished(id)),
    );
    const groups: [string, StaggerConfig][] = Object.values(config.actions).flatMap((a) =>
      a.stagger ? [[a.stagger.group, a.stagger] as [string, StaggerConfig]] : [],
    );
    this.stagger = new StaggerCoordinator<Staggered>(
      { prefix: config.mqtt.prefix, host: config.host, stateDir: config.state_dir, groups },
      sink,
      {
        run: (q, note) => this.startStaggered(q, note),
        scheduled: (q, runAt, reason) => this.scheduled(q, runAt, reason),
        expire: (q, error) =>
          this.finish(q, rejected(this.config.host, q.ref, { code: 'expired', error }, new Date())),
      },
      log.child({ module: 'stagger' }),
      isConnected,
    );
  }

  get runningCount(): number {
    return this.running.size;
  }

  get queuedCount(): number {
    return this.queue.length + this.stagger.pendingCount();
  }

  /** One delivery on a command topic. Never throws: every outcome is a published result. */
  handle(topicAction: string | undefined, payload: Buffer, packet: IPublishPacket): void {
    const now = Date.now();
    const replyTo = this.results.replyToOf(packet);
    // `client`: the account the broker authenticated, where it vouches for it (core/sender.ts).
    const props = packet.properties?.userProperties;
    const one = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const origin: Origin = {
      topic: packet.topic,
      client: one(props?.[AUTHENTICATED_USER_PROPERTY]),
      claimed: one(props?.client_id),
    };
    const parsed = parseDelivery({ topicAction, payload, retained: packet.retain === true }, now, randomUUID);
    if (!parsed.ok) {
      // A request naming an id we know — a retained copy, or an invalid one reusing it — is answered with
      // the stored result, never a rejection over it (docs/security.md § Answers that cannot be faked).
      if (this.journal.get(parsed.ref.id)) return this.repeat(parsed.ref.id, replyTo, origin);
      return this.reject(parsed.ref, parsed.rejection, replyTo, origin);
    }
    const req = parsed.request;
    if (req.press && req.action !== undefined) req.params = this.pressParams(req.action);
    const ref: RequestRef = { id: req.id, action: req.action ?? null, transaction: req.transaction };
    if (this.journal.get(req.id)) {
      // A signed request seen before is a replay (someone captured it), not a retry: it learns nothing,
      // and its rejection goes where it replaces nothing — never over the id's stored result.
      if (req.sig !== undefined)
        return this.reject(
          ref,
          {
            code: 'replayed',
            error: `id ${req.id} was already used; a signed request is valid once — sign a new request with a new id`,
          },
          replyTo,
          origin,
          false,
        );
      return this.repeat(req.id, replyTo, origin);
    }
    if (!this.accepting)
      return this.reject(
        ref,
        {
          code: 'shutting_down',
          error:
            'the agent is stopping; the request was not run — send it again once the host is back online',
        },
        replyTo,
        origin,
      );
    const accepted = this.accept(req, ref, replyTo, now, origin);
    if ('code' in accepted) return this.reject(ref, accepted, replyTo, origin);
  }

  /**
   * A command-topic delivery whose handling failed unexpectedly (src/agent/dispatch.ts): answered
   * `invalid_request` under a new id, so it can never replace a known id's result.
   */
  refuse(topicAction: string | undefined, packet: IPublishPacket, error: string): void {
    const action = topicAction !== undefined && ACTION_NAME_RE.test(topicAction) ? topicAction : null;
    const ref: RequestRef = { id: randomUUID(), action };
    this.reject(ref, { code: 'invalid_request', error }, this.results.replyToOf(packet), {
      topic: packet.topic,
      client: undefined,
    });
  }

  /**
   * Requests a restart found in the journal: scheduled ones are resumed, the rest were cut short —
   * unless the broker holds a final for them the journal could not record (restart-check.ts).
   */
  /** At start, before connecting: the ids the journal left running wait for resume() to settle them. */
  restarting(unfinished: Result[]): void {
    for (const r of unfinished) if (r.status !== 'scheduled') this.unsettled.set(r.id, false);
  }

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
        if (!('code' in accepted)) continue;
        // The config changed under a scheduled request: it cannot run as asked.
        this.journal.forget(r.id);
        this.reject(ref, accepted, this.replyOf(r.id), origin);
        continue;
      }
      const final = published.get(r.id);
      if (final) {
        this.log.warn(
          { id: r.id, status: final.status },
          'adopted the final result the broker holds for an id the journal could not record as final',
        );
        this.remember(() => {
          this.journal.record(final);
          this.journal.markPublished(r.id);
        });
        // A repeat came while it was unsettled: it is answered now (and its reply topic, if it named one).
        if (this.unsettled.get(r.id)) this.results.final(final, undefined, false);
        continue;
      }
      await this.reportInterrupted(r);
    }
  }

  /** The journaled reply target of an id, checked again: it was read from a file. */
  private replyOf(id: string): ReplyTo | undefined {
    return replyFromJournal(this.journal.replyOf(id), this.topics.replyBase);
  }

  /** Stop intake; let running commands finish within `graceMs`, then kill them (`interrupted`). */
  async drain(graceMs: number): Promise<void> {
    this.accepting = false;
    // Accepted ones whose records are still being synced are answered (shutting_down) before we go on.
    await Promise.allSettled([...this.syncing]);
    // Scheduled staggered runs stay in the journal and resume at the next start.
    this.stagger.stop();
    for (const q of this.queue.splice(0)) this.neverStarted(q);
    if (this.running.size === 0) return;
    const timer = setTimeout(() => {
      for (const ctl of this.running.values()) ctl.abort();
    }, graceMs);
    await new Promise<void>((resolve) => this.idle.push(resolve));
    clearTimeout(timer);
  }

  /** Validate, journal, and queue (or hand to the stagger); a Rejection when it cannot be accepted. */
  private accept(
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
      // A late request never runs: ts + ttl, or ts + the action's max_age (docs/mqtt-api.md § Late requests).
      const late = staleness(
        req,
        acceptedAt,
        this.config.actions[resolved.job.action]?.max_age ?? this.config.execution.max_age,
      );
      if (late) return late;
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
    }
    // Path params resolved on the file system; the deny-list over every command it may run (run-job checks again).
    const checked = checkJob(resolved.job, this.config);
    if (!checked.ok) return checked.rejection;
    const job = checked.job;
    if (!this.config.execution.enabled) {
      return {
        code: 'execution_disabled',
        error: `execution is disabled on ${this.config.host} — set execution.enabled: true in ${this.config.source} to let it run whitelisted actions`,
      };
    }
    const stagger = staggerOf(this.config.actions[job.action]);
    const waiting = (stagger ? this.stagger.pendingCount() : this.queue.length) + this.syncing.size;
    if (
      !resumed &&
      (stagger || this.running.size >= this.config.execution.concurrency) &&
      waiting >= this.config.execution.queue
    ) {
      return {
        code: 'busy',
        error: `${this.running.size} commands are running and ${waiting} waiting (execution.concurrency / execution.queue) — try again later with the same id`,
      };
    }
    const stored: StoredRequest = {
      action: job.action,
      params: job.params,
      timeoutMs: req.timeoutMs,
      acceptedAt,
    };
    const q: Queued = { origin, ref, job, replyTo, stored, stagger };
    let durable: Promise<void> | undefined;
    try {
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
        this.remember(() => this.journal.forget(ref.id));
        this.signedIds.release(ref.id);
        this.reject(ref, this.journalRefusal(ref.id, err), replyTo, origin);
      },
    );
    this.syncing.add(synced);
    void synced.finally(() => this.syncing.delete(synced));
    return { ok: true };
  }

  private enqueue(q: Queued, acceptedAt: number): void {
    // The agent began to stop while this one's record was being synced: like a queued request, never started.
    if (!this.accepting) return this.neverStarted(q);
    if (q.stagger) {
      this.stagger.submit({ ...q, stagger: q.stagger, id: q.ref.id, action: q.job.action, acceptedAt });
      return;
    }
    this.queue.push(q);
    this.pump();
  }

  /** Accepted but stopped before it started: the id is released, so the same request can simply be sent again. */
  private neverStarted(q: Queued): void {
    this.journal.forget(q.ref.id);
    this.signedIds.release(q.ref.id);
    this.reject(
      q.ref,
      {
        code: 'shutting_down',
        error:
          'the agent stopped before this request could start; it was not run — send it again (the same id is fine)',
      },
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

  private scheduled(q: Queued, runAt: Date, reason: string | undefined): void {
    const result = makeResult(this.config.host, q.ref, {
      status: 'scheduled',
      run_at: runAt.toISOString(),
      ...(reason ? { error: reason } : {}),
    });
    this.remember(() => this.journal.record(result, q.stored));
    this.results.progress(result);
    this.log.info({ id: q.ref.id, action: q.ref.action, run_at: result.run_at, reason }, 'request scheduled');
  }

  /** A staggered run starts when the group allows it, not behind the concurrency queue: its start time is the group's record. */
  private startStaggered(q: Queued, note: string | undefined): void {
    q.note = note;
    this.remember(() =>
      this.journal.record(makeResult(this.config.host, q.ref, { status: 'running' }), undefined, false),
    );
    void this.run(q);
  }

  private async reportInterrupted(r: Result): Promise<void> {
    const ref: RequestRef = { id: r.id, action: r.action, transaction: r.transaction };
    // Stopped before it is reported: `interrupted` means nothing of it runs on (docs/mqtt-api.md).
    const stopped = await stopLeftovers(this.journal.processOf(r.id));
    const final = makeResult(this.config.host, ref, {
      status: 'interrupted',
      error_code: 'interrupted',
      error: `the agent stopped or died while this request was accepted or running; ${stopped}; it was not re-run — check the host, then send a new request`,
      executed_at: r.executed_at,
      completed_at: new Date().toISOString(),
    });
    this.remember(() => this.journal.record(final));
    this.count(final);
    this.results.final(final, this.replyOf(r.id));
  }

  private pump(): void {
    while (this.running.size < this.config.execution.concurrency && this.queue.length > 0) {
      const next = this.queue.shift();
      if (next) void this.run(next);
    }
    if (this.running.size === 0 && this.queue.length === 0)
      for (const resolve of this.idle.splice(0)) resolve();
  }

  private async run(q: Queued): Promise<void> {
    const ctl = new AbortController();
    this.running.set(q.ref.id, ctl);
    let announce: NodeJS.Timeout | undefined;
    try {
      const running = makeResult(this.config.host, q.ref, {
        status: 'running',
        executed_at: new Date().toISOString(),
      });
      this.remember(() => this.journal.record(running, undefined, false));
      this.observe((o, a) => o.started(a), q.ref.action);
      // `running` only for commands still running after a moment (the contract's 1 s): a quick command's
      // final result is then the only message on its topic, and never waits behind a delayed ACK (Nagle)
      // at a broker that leaves TCP_NODELAY off.
      announce = setTimeout(() => this.results.progress(running), RUNNING_ANNOUNCE_MS);
      const live = new LiveOutput(q.ref.id, this.config.execution.max_output, (msg) =>
        this.results.output(msg),
      );
      const outcome = await runJob(q.job, this.config, {
        path: this.config.execution.path,
        maxOutput: this.config.execution.max_output,
        isolation: this.isolation,
        signal: ctl.signal,
        onOutput: (stream, chunk) => {
          live.push(stream, chunk);
          if (stream === 'stdout') this.observe((o, a) => o.output(a, chunk), q.ref.action);
        },
        // Recorded as it starts: a restart after a crash stops what is left of it (restart-check.ts).
        onSpawn: (pid) => {
          const start = processStart(pid);
          if (start !== undefined)
            this.remember(() =>
              this.journal.record(running, undefined, false, { proc: { pgid: pid, start } }),
            );
        },
      });
      // The last lines go out before the final result, so a follower sees them in order.
      live.flush(true);
      let result = makeResult(this.config.host, q.ref, { ...outcome, ...(q.note ? { note: q.note } : {}) });
      if (q.stagger) result = await this.afterStaggered(q, q.stagger, result, ctl.signal);
      this.finish(q, result);
    } catch (err) {
      this.log.error({ err, id: q.ref.id }, 'running a job failed unexpectedly');
      this.finish(
        q,
        makeResult(this.config.host, q.ref, {
          status: 'failed',
          error_code: 'exit_nonzero',
          error: `the agent could not run the command: ${(err as Error).message}`,
          completed_at: new Date().toISOString(),
        }),
      );
    } finally {
      clearTimeout(announce);
      this.running.delete(q.ref.id);
      this.observe((o, a) => o.ended(a), q.ref.action);
      this.pump();
    }
  }

  private observe(call: (o: JobObserver, action: string) => void, action: string | null): void {
    if (!this.observer || action === null) return;
    try {
      call(this.observer, action);
    } catch (err) {
      this.log.warn({ err, action }, 'the job observer failed');
    }
  }

  /** A staggered run with a health check releases its group only when the check passes. */
  private async afterStaggered(
    q: Queued,
    stagger: StaggerConfig,
    result: Result,
    signal: AbortSignal,
  ): Promise<Result> {
    const health = stagger.health;
    const record = this.stagger.recordOf(stagger.group, q.ref.id);
    if (!health || !record) return result;
    if (result.status !== 'succeeded') {
      this.log.warn(
        { group: stagger.group, id: q.ref.id },
        'a staggered run failed; its group stays held until a run on this host passes its health check',
      );
      return result;
    }
    // A deployment ran its own check (the action's `health`) before deciding on its rollback: that one counts.
    const check =
      result.health ??
      (await runHealthCheck(health, {
        path: this.config.execution.path,
        maxOutput: 2000,
        signal,
        isolation: this.isolation,
      }));
    if (check.passed) this.stagger.release(stagger.group, { ...record, released: true });
    else
      this.log.warn(
        { group: stagger.group, id: q.ref.id, check },
        'the health check failed; the group stays held',
      );
    const r: Result = { ...result, health: check };
    if (!check.passed) {
      r.status = 'failed';
      r.error_code = 'exit_nonzero';
      r.error = `the command succeeded but its health check failed ${check.attempts} time(s) (exit ${check.exit_code}); group ${stagger.group} stays held so no other member restarts — fix this host, then run the action here again`;
    }
    return r;
  }

  private finish(q: Queued, result: Result): void {
    this.remember(() => this.journal.record(result, undefined, false));
    this.audit.write({ ...q.origin, decision: 'accepted', result });
    this.count(result);
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

  /** Journal writes after acceptance: a failure is logged, never thrown into the MQTT session. */
  private remember(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.log.error({ err }, 'could not write the id journal in state_dir; the result is still published');
    }
  }

  /** Final results the broker never acknowledged before the last stop: published again. */
  flushOutbox(): void {
    const pending = this.journal.outbox();
    if (pending.length > 0)
      this.log.info(
        { ids: pending.map((r) => r.id) },
        'publishing results the broker had not acknowledged before the last stop',
      );
    for (const r of pending) this.results.final(r, this.replyOf(r.id));
  }

  /** `onIdTopic` false: the id's topic holds a result that must stay (a replay); see ResultPublisher.aside. */
  private reject(
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

  private repeat(id: string, replyTo: ReplyTo | undefined, origin: Origin): void {
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
    // An id a restart has not settled: its retained result may be a final the journal missed, left as it is.
    if (this.unsettled.has(id)) return void this.unsettled.set(id, true);
    if (stored.executed_at !== undefined || stored.status === 'scheduled') this.results.progress(stored);
  }

  private count(result: Result): void {
    this.stats.record(result);
  }
}
