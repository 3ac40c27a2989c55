/**
 * The Running sensor's state, `P/H/running` (retained; core/running.ts): fed by the pipeline's job
 * observer (the same events that feed live output), rate-limited for Home Assistant's recorder
 * (docs/home-assistant.md § Cancel and Running):
 * - a run shows once it has run for a moment (like its `running` result), so quick presses never
 *   flicker the sensor;
 * - at most one message every MIN_INTERVAL_MS, the latest state winning;
 * - while something runs, `elapsed_s` is refreshed every REFRESH_MS even without new output.
 * The Cancel button is available only while this state names a run.
 */
import type { Config } from '../config/load.js';
import { lastLine, runningState, type RunView } from '../core/running.js';
import { hostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import type { AgentPart } from './part.js';
import type { Publisher } from './publisher.js';
import type { JobObserver, RunInfo } from './run-queue.js';

/** A run shows after this long (docs/mqtt-api.md: `running` after 1 s). */
export const ANNOUNCE_MS = 1000;
/** The fewest milliseconds between two messages. */
export const MIN_INTERVAL_MS = 2000;
/** How often a run's elapsed time is republished without other news. */
export const REFRESH_MS = 30_000;

export class RunningSensor implements JobObserver, AgentPart {
  readonly name = 'running sensor';
  readonly stderr = true;
  private readonly topic: string;
  /** In the order they started. */
  private readonly runs = new Map<string, RunView>();
  private timer: NodeJS.Timeout | undefined;
  /** What was published last, without its clock-driven field, and when. */
  private lastKey: string | undefined;
  private lastAt = 0;
  private stopped = false;

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    private readonly connected: () => boolean,
    private readonly clock: () => number = Date.now,
  ) {
    this.topic = hostTopics(config.mqtt.prefix, config.host).running;
  }

  start(): void {
    // Nothing to read: the state starts idle.
  }

  /** Every connect: the state now, retained (a broker that lost it, or a stale one of a crash). */
  async onConnect(): Promise<void> {
    this.lastKey = undefined;
    this.lastAt = 0;
    await this.publish(true);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  started(action: string, run: RunInfo): void {
    this.runs.set(run.id, {
      id: run.id,
      action,
      startedAt: this.clock(),
      steps: run.steps,
      step: undefined,
      line: undefined,
    });
    this.schedule(ANNOUNCE_MS);
  }

  step(_action: string, k: number, run: RunInfo): void {
    const view = this.runs.get(run.id);
    if (view) view.step = k;
    this.schedule(0);
  }

  output(_action: string, chunk: Buffer, run: RunInfo): void {
    const view = this.runs.get(run.id);
    if (!view) return;
    // Only the tail of a large chunk can hold its last line.
    view.line = lastLine(view.line, chunk.subarray(-4096).toString('utf8'));
    this.schedule(0);
  }

  ended(_action: string, run: RunInfo): void {
    this.runs.delete(run.id);
    this.schedule(0);
  }

  /** The runs that have run long enough to show. */
  private visible(now: number): RunView[] {
    return [...this.runs.values()].filter((r) => now - r.startedAt >= ANNOUNCE_MS);
  }

  private schedule(inMs: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publish(false);
    }, inMs);
    this.timer.unref();
  }

  /** Publishes when the state changed (or its elapsed time is due), at most every MIN_INTERVAL_MS. */
  private async publish(force: boolean): Promise<void> {
    const now = this.clock();
    const state = runningState(this.config.host, this.visible(now), now);
    const key = JSON.stringify({ ...state, elapsed_s: null });
    const due = state.id !== null && now - this.lastAt >= REFRESH_MS;
    const changed = key !== this.lastKey || due;
    if (!force && changed && now - this.lastAt < MIN_INTERVAL_MS) {
      this.schedule(this.lastAt + MIN_INTERVAL_MS - now);
      return;
    }
    // A run not shown yet, or a refresh to come: look again then.
    if (this.runs.size > 0) this.schedule(Math.min(ANNOUNCE_MS, REFRESH_MS));
    if ((!force && !changed) || !this.connected()) return;
    this.lastKey = key;
    this.lastAt = now;
    try {
      await this.mqtt.publish(this.topic, JSON.stringify(state), { retain: true });
    } catch (err) {
      this.lastKey = undefined;
      this.log.warn({ err }, 'could not publish the running state');
    }
  }
}
