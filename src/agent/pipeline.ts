/**
 * One request, in order: intake (intake.ts) → admission (core/admission.ts) → journal → queue, or the
 * stagger group (run-queue.ts, staggered-runs.ts) → run (run-job.ts) → outcomes (outcomes.ts) → drain.
 * The promises: exactly the whitelisted argv runs, at most once per id, and every request gets an answer.
 */
import type { IPublishPacket } from 'mqtt';
import type { Config } from '../config/load.js';
import type { Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import type { Isolation } from '../exec/wrap.js';
import type { Logger } from '../log.js';
import { Acceptance } from './accept.js';
import { Cancels } from './cancel.js';
import { originOf, readDelivery, refusedRef, type Origin } from './intake.js';
import type { Journal } from './journal.js';
import { Outcomes } from './outcomes.js';
import { Reboots } from './reboots.js';
import type { AgentPart, ConnectInfo } from './part.js';
import type { ReadRetained } from './restart-check.js';
import { Restarts } from './restarts.js';
import type { ReplyTo } from './results.js';
import type { Publisher } from './publisher.js';
import { RunQueue } from './run-queue.js';
import { StaggeredRuns } from './staggered-runs.js';
import type { JobObserver } from './run-queue.js';
export type { JobObserver } from './run-queue.js';

export class Pipeline implements AgentPart {
  readonly name = 'pipeline';

  private readonly outcomes: Outcomes;
  private readonly runs: RunQueue;
  private readonly staggered: StaggeredRuns;
  private readonly acceptance: Acceptance;
  private readonly restarts: Restarts;
  private readonly reboots: Reboots;
  private readonly cancels: Cancels;

  constructor(
    private readonly config: Config,
    topics: HostTopics,
    private readonly journal: Journal,
    sink: Publisher,
    log: Logger,
    /** The params a press (HA's button) runs with: the values HA's select/number entities hold. */
    private readonly pressParams: (action: string) => Record<string, string> = () => ({}),
    isConnected: () => boolean,
    /** Who runs the commands (docs/security.md § Commands run as another user). */
    isolation?: Isolation,
  ) {
    this.outcomes = new Outcomes(config, topics, journal, sink, log);
    this.staggered = new StaggeredRuns(
      config,
      sink,
      this.outcomes,
      (q, note) => this.runs.startStaggered(q, note),
      log,
      isConnected,
      isolation,
    );
    this.reboots = new Reboots(
      config,
      topics,
      this.outcomes,
      sink,
      log.child({ module: 'reboots' }),
      isolation,
      (r) => this.staggered.afterReboot(r),
    );
    this.runs = new RunQueue(
      config,
      journal,
      this.outcomes,
      log,
      isolation,
      (q, stagger, result, signal) => this.staggered.afterRun(q, stagger, result, signal),
      this.reboots,
    );
    this.acceptance = new Acceptance(config, journal, this.outcomes, this.runs, this.staggered, log);
    this.cancels = new Cancels(
      config,
      journal,
      this.outcomes,
      this.runs,
      this.staggered,
      this.acceptance,
      log,
    );
    this.restarts = new Restarts(
      config,
      topics,
      journal,
      this.outcomes,
      (...resumed) => this.acceptance.accept(...resumed),
      (r, replyTo) => this.reboots.settle(r, replyTo),
    );
  }

  /** Reads what its parts keep in state_dir; before connecting. */
  start(): void {
    this.outcomes.start();
    this.staggered.start();
    this.runs.start();
  }

  /** Told when a command of an action starts, prints and ends (the update entity, the Running sensor). */
  observe(o: JobObserver): void {
    this.runs.observers.push(o);
  }

  /** Told of every final result, run or refused (the switches: agent/switches.ts). */
  set finalObserver(fn: ((result: Result) => void) | undefined) {
    this.outcomes.onFinal = fn;
  }

  get runningCount(): number {
    return this.runs.runningCount;
  }

  get queuedCount(): number {
    return this.runs.waitingCount + this.staggered.pendingCount();
  }

  /** The heartbeat's figures: totals and per action. */
  figures(): ReturnType<Outcomes['figures']> {
    return this.outcomes.figures();
  }

  saveStats(): void {
    this.outcomes.saveStats();
  }

  /** Before any await on a new connection: requests may already be arriving on it. */
  onConnect({ reconnect }: ConnectInfo): void {
    this.staggered.onConnect();
    // Also before any await, so it holds only the last run's results the broker never acknowledged.
    if (!reconnect) this.flushOutbox();
  }

  onDisconnect(): void {
    this.staggered.onDisconnect();
  }

  /** A fleet or peer-status message (docs/stagger.md § Topics); true when it was one. */
  onFleetMessage(topic: string, payload: Buffer): boolean {
    return this.staggered.onMessage(topic, payload);
  }

  /** One delivery on a command topic. Never throws: every outcome is a published result. */
  handle(topicAction: string | undefined, payload: Buffer, packet: IPublishPacket): void {
    const now = Date.now();
    const replyTo = this.outcomes.replyToOf(packet);
    const origin = originOf(packet);
    const delivery = readDelivery(topicAction, payload, packet, now, {
      known: (id) => this.journal.get(id) !== undefined,
      accepting: this.acceptance.accepting,
      pressParams: this.pressParams,
    });
    if (delivery.kind === 'repeat') return this.repeat(delivery.id, replyTo, origin);
    if (delivery.kind === 'reject')
      return this.outcomes.reject(delivery.ref, delivery.rejection, replyTo, origin, delivery.onIdTopic);
    if (delivery.kind === 'stopping')
      return this.outcomes.notRun(delivery.ref, delivery.error, replyTo, origin);
    const { request, ref } = delivery;
    const accepted =
      request.cancel === undefined
        ? this.acceptance.accept(request, ref, replyTo, now, origin)
        : this.cancels.accept(request, ref, replyTo, now, origin);
    if ('code' in accepted) return this.outcomes.reject(ref, accepted, replyTo, origin);
  }

  /**
   * A command-topic delivery whose handling failed unexpectedly (src/agent/dispatch.ts): answered
   * `invalid_request` under a new id, so it can never replace a known id's result.
   */
  refuse(topicAction: string | undefined, packet: IPublishPacket, error: string): void {
    this.outcomes.reject(
      refusedRef(topicAction),
      { code: 'invalid_request', error },
      this.outcomes.replyToOf(packet),
      { topic: packet.topic, client: undefined },
    );
  }

  /** At start, before connecting: the ids the journal left running wait for resume() to settle them. */
  restarting(unfinished: Result[]): void {
    this.restarts.restarting(unfinished);
  }

  /** Once connected: the requests the last stop left unfinished are resumed or reported (restarts.ts). */
  resume(unfinished: Result[], readRetained: ReadRetained): Promise<void> {
    return this.restarts.resume(unfinished, readRetained);
  }

  /** Final results the broker never acknowledged before the last stop: published again. */
  flushOutbox(): void {
    this.outcomes.flushOutbox((id) => this.restarts.replyOf(id));
  }

  /** Drains (execution.shutdown_grace); the counters are saved however that went. */
  async stop(): Promise<void> {
    try {
      await this.drain(this.config.execution.shutdown_grace);
    } finally {
      this.saveStats();
    }
  }

  /** Stop intake; let running commands finish within `graceMs`, then kill them (`interrupted`). */
  async drain(graceMs: number): Promise<void> {
    // Accepted ones whose records are still being synced are answered (shutting_down) before we go on.
    await this.acceptance.close();
    // Scheduled staggered runs stay in the journal and resume at the next start.
    this.staggered.stop();
    for (const q of this.runs.takeWaiting()) this.acceptance.neverStarted(q);
    // A reboot waiting for the host to go down: this stop is the shutdown (its result stays `rebooting`).
    this.reboots.stopping();
    await this.runs.settle(graceMs);
    this.runs.close();
  }

  private repeat(id: string, replyTo: ReplyTo | undefined, origin: Origin): void {
    // An id a restart has not settled: its retained result may be a final the journal missed, left as it is.
    this.outcomes.repeat(id, replyTo, origin, (held) => this.restarts.holdRepeat(held));
  }
}
