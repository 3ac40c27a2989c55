/**
 * intake → whitelist → journal → queue → runner → results.
 * The promises: exactly the whitelisted argv runs, at most once per id, and
 * every request gets an answer.
 */
import { randomUUID } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { Config } from '../config/load.js';
import { parseDelivery } from '../core/request.js';
import { resolveRequest, type Job } from '../core/resolve.js';
import { isFinal, makeResult, rejected, type Rejection, type RequestRef, type Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import { executeJob } from '../exec/execute.js';
import type { Logger } from '../log.js';
import type { Journal } from './journal.js';

/** How results leave the agent; the agent wires it to its MQTT session. */
export interface ResultSink {
  publish(topic: string, payload: string, options: { retain: boolean; properties?: Record<string, unknown> }): Promise<void>;
}

export interface Stats {
  executed: number;
  succeeded: number;
  failed: number;
  timed_out: number;
  rejected: number;
  avg_duration_ms: number;
}

interface ReplyTo {
  responseTopic: string;
  correlationData: Buffer | undefined;
}

interface Queued {
  ref: RequestRef;
  job: Job;
  replyTo: ReplyTo | undefined;
}

// Per-id results retained beyond this many are cleared, oldest first (the contract).
const KEEP_RETAINED_RESULTS = 100;
// MQTT 5 message expiry of per-id results: one day.
const RESULT_EXPIRY_SEC = 86_400;

export class Pipeline {
  private readonly queue: Queued[] = [];
  private readonly running = new Map<string, AbortController>();
  private readonly idle: (() => void)[] = [];
  private readonly retainedIds: string[];
  private accepting = true;
  private totalDurationMs = 0;
  readonly stats: Stats = { executed: 0, succeeded: 0, failed: 0, timed_out: 0, rejected: 0, avg_duration_ms: 0 };

  constructor(
    private readonly config: Config,
    private readonly topics: HostTopics,
    private readonly journal: Journal,
    private readonly sink: ResultSink,
    private readonly log: Logger,
    /** The params a press (HA's button) runs with: the values HA's select/number entities hold. */
    private readonly pressParams: (action: string) => Record<string, string> = () => ({}),
  ) {
    this.retainedIds = journal.finalIds().slice(-KEEP_RETAINED_RESULTS);
  }

  get runningCount(): number {
    return this.running.size;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** One delivery on a command topic. Never throws: every outcome is a published result. */
  handle(topicAction: string | undefined, payload: Buffer, packet: IPublishPacket): void {
    const now = Date.now();
    const replyTo = replyToOf(packet);
    const parsed = parseDelivery({ topicAction, payload, retained: packet.retain === true }, now, randomUUID);
    if (!parsed.ok) {
      // A retained copy of an id we know is answered with its stored result, not with a rejection over it.
      if (parsed.rejection.code === 'retained_ignored' && this.journal.get(parsed.ref.id)) return this.repeat(parsed.ref.id, replyTo);
      return this.reject(parsed.ref, parsed.rejection, replyTo);
    }
    const req = parsed.request;
    if (req.press && req.action !== undefined) req.params = this.pressParams(req.action);
    const known = this.journal.get(req.id);
    if (known) return this.repeat(req.id, replyTo);

    const ref: RequestRef = { id: req.id, action: req.action ?? null, transaction: req.transaction };
    if (!this.accepting) return this.reject(ref, { code: 'shutting_down', error: 'the agent is stopping; the request was not run — send it again once the host is back online' }, replyTo);

    const resolved = resolveRequest(req, this.config.actions, { sudo: this.config.execution.sudo, timeoutMs: this.config.execution.timeout });
    if (!resolved.ok) return this.reject({ ...ref, action: resolved.action }, resolved.rejection, replyTo);
    const job = resolved.job;
    ref.action = job.action;
    if (!this.config.execution.enabled) {
      return this.reject(ref, { code: 'execution_disabled', error: `execution is disabled on ${this.config.host} — set execution.enabled: true in ${this.config.source} to let it run whitelisted actions` }, replyTo);
    }
    if (this.running.size >= this.config.execution.concurrency && this.queue.length >= this.config.execution.queue) {
      return this.reject(ref, { code: 'busy', error: `${this.running.size} commands are running and ${this.queue.length} waiting (execution.concurrency / execution.queue) — try again later with the same id` }, replyTo);
    }
    // Journaled before it can run: after a crash this id is reported, never re-run.
    this.journal.record(makeResult(this.config.host, ref, { status: 'running' }));
    this.queue.push({ ref, job, replyTo });
    this.pump();
  }

  /** Stop intake; let running commands finish within `graceMs`, then kill them (`interrupted`). */
  async drain(graceMs: number): Promise<void> {
    this.accepting = false;
    for (const q of this.queue.splice(0)) {
      // Never started: the id is released, so the same request can simply be sent again.
      this.journal.forget(q.ref.id);
      const result = rejected(this.config.host, q.ref, { code: 'shutting_down', error: 'the agent stopped before this request could start; it was not run — send it again (the same id is fine)' }, new Date());
      this.count(result);
      this.publishFinal(result, q.replyTo);
    }
    if (this.running.size === 0) return;
    const timer = setTimeout(() => {
      for (const ctl of this.running.values()) ctl.abort();
    }, graceMs);
    await new Promise<void>((resolve) => this.idle.push(resolve));
    clearTimeout(timer);
  }

  /** Ids that a crash cut short: reported `interrupted`, never re-run. */
  reportInterrupted(results: Result[]): void {
    for (const r of results) {
      const ref: RequestRef = { id: r.id, action: r.action, transaction: r.transaction };
      const final = makeResult(this.config.host, ref, {
        status: 'interrupted',
        error_code: 'interrupted',
        error: 'the agent stopped or died while this request was accepted or running; it was not re-run — check the host, then send a new request',
        executed_at: r.executed_at,
        completed_at: new Date().toISOString(),
      });
      this.journal.record(final);
      this.count(final);
      this.publishFinal(final, undefined);
    }
  }

  private pump(): void {
    while (this.running.size < this.config.execution.concurrency && this.queue.length > 0) {
      const next = this.queue.shift();
      if (next) void this.run(next);
    }
    if (this.running.size === 0 && this.queue.length === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  private async run(q: Queued): Promise<void> {
    const ctl = new AbortController();
    this.running.set(q.ref.id, ctl);
    try {
      const running = makeResult(this.config.host, q.ref, { status: 'running', executed_at: new Date().toISOString() });
      this.journal.record(running);
      this.send(this.topics.resultFor(q.ref.id), running, true);
      const outcome = await executeJob(q.job, { path: this.config.execution.path, maxOutput: this.config.execution.max_output, signal: ctl.signal });
      this.finish(q, makeResult(this.config.host, q.ref, outcome));
    } catch (err) {
      this.log.error({ err, id: q.ref.id }, 'running a job failed unexpectedly');
      this.finish(q, makeResult(this.config.host, q.ref, { status: 'failed', error_code: 'exit_nonzero', error: `the agent could not run the command: ${(err as Error).message}`, completed_at: new Date().toISOString() }));
    } finally {
      this.running.delete(q.ref.id);
      this.pump();
    }
  }

  private finish(q: Queued, result: Result): void {
    try {
      this.journal.record(result);
    } catch (err) {
      this.log.error({ err, id: result.id }, 'could not journal a final result; it is still published');
    }
    this.count(result);
    this.log.info({ id: result.id, action: result.action, status: result.status, exit_code: result.exit_code, duration_ms: result.duration_ms }, 'request finished');
    this.publishFinal(result, q.replyTo);
  }

  private reject(ref: RequestRef, rejection: Rejection, replyTo: ReplyTo | undefined): void {
    const result = rejected(this.config.host, ref, rejection, new Date());
    this.count(result);
    this.log.info({ id: ref.id, action: ref.action, error_code: rejection.code }, 'request rejected');
    // Rejections are not journaled: nothing ran, so the same id may be sent again once fixed.
    this.publishFinal(result, replyTo);
  }

  private repeat(id: string, replyTo: ReplyTo | undefined): void {
    const stored = this.journal.get(id);
    if (!stored) return;
    this.log.info({ id, status: stored.status }, 'repeated id: answering with the stored result, not running it again');
    if (isFinal(stored.status)) this.publishFinal(stored, replyTo, false);
    else if (stored.executed_at !== undefined) this.send(this.topics.resultFor(id), stored, true);
  }

  private count(result: Result): void {
    switch (result.status) {
      case 'succeeded':
      case 'failed':
      case 'timed_out':
      case 'interrupted':
        this.stats.executed++;
        if (result.status !== 'interrupted') this.stats[result.status]++;
        if (result.duration_ms !== undefined) {
          this.totalDurationMs += result.duration_ms;
          this.stats.avg_duration_ms = Math.round(this.totalDurationMs / this.stats.executed);
        }
        break;
      case 'rejected':
        this.stats.rejected++;
        break;
      default:
        break;
    }
  }

  private publishFinal(result: Result, replyTo: ReplyTo | undefined, fresh = true): void {
    this.send(this.topics.resultFor(result.id), result, true);
    if (fresh) this.send(this.topics.result, result, false);
    if (replyTo) {
      const properties: Record<string, unknown> = {};
      if (replyTo.correlationData) properties.correlationData = replyTo.correlationData;
      this.sink.publish(replyTo.responseTopic, JSON.stringify(result), { retain: false, properties }).catch((err: unknown) => this.log.warn({ err, id: result.id }, 'could not publish to the response topic'));
    }
    if (fresh) this.trackRetained(result.id);
  }

  private trackRetained(id: string): void {
    const at = this.retainedIds.indexOf(id);
    if (at >= 0) this.retainedIds.splice(at, 1);
    this.retainedIds.push(id);
    while (this.retainedIds.length > KEEP_RETAINED_RESULTS) {
      const old = this.retainedIds.shift();
      // An empty retained payload deletes the retained message [MQTT-3.3.1-10].
      if (old !== undefined) this.sink.publish(this.topics.resultFor(old), '', { retain: true }).catch(() => undefined);
    }
  }

  private send(topic: string, result: Result, expires: boolean): void {
    const properties = expires ? { messageExpiryInterval: RESULT_EXPIRY_SEC } : undefined;
    this.sink
      .publish(topic, JSON.stringify(result), { retain: true, ...(properties ? { properties } : {}) })
      .catch((err: unknown) => this.log.warn({ err, topic }, 'could not publish a result'));
  }
}

function replyToOf(packet: IPublishPacket): ReplyTo | undefined {
  const responseTopic = packet.properties?.responseTopic;
  if (!responseTopic || /[+#]/.test(responseTopic)) return undefined;
  return { responseTopic, correlationData: packet.properties?.correlationData };
}
