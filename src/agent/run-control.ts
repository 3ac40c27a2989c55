/**
 * How a run is stopped: by the agent's stop (its result `interrupted`) or by a cancel request (its
 * result `cancelled`, docs/mqtt-api.md § Cancel). Both abort the one signal the command runs under,
 * so the spawn layer kills the process group the same way it does for a timeout (exec/spawn.ts); the
 * reason (a CancelReason, exec/stop-reason.ts) tells them apart afterwards, and a deployment's
 * rollback after a cancel runs under the stop signal alone (exec/rollback.ts).
 */
import type { Result } from '../core/result.js';
import { CancelReason } from '../exec/stop-reason.js';

export class RunControl {
  private readonly stopping = new AbortController();
  private readonly cancelling = new AbortController();
  /** What the command runs under: aborted by either, with the first one's reason (AbortSignal.any needs Node 20.3). */
  private readonly either = new AbortController();
  readonly signal = this.either.signal;
  readonly startedAt = Date.now();
  private final: Result | undefined;
  private readonly waiters: ((r: Result) => void)[] = [];

  constructor(
    readonly id: string,
    readonly action: string,
    /** Whether the action runs through sudo: a cancel needs a signature where it would (core/admission.ts). */
    readonly privileged: boolean,
  ) {}

  /** Aborted only by the agent's stop: what a rollback after a cancel runs under. */
  get stopSignal(): AbortSignal {
    return this.stopping.signal;
  }

  /** The id of the first cancel request that stopped this run. */
  get cancelledBy(): string | undefined {
    const reason: unknown = this.cancelling.signal.reason;
    return this.cancelling.signal.aborted && reason instanceof CancelReason ? reason.by : undefined;
  }

  stop(): void {
    const reason = new Error('the agent is stopping');
    this.stopping.abort(reason);
    if (!this.either.signal.aborted) this.either.abort(reason);
  }

  /** Kills the command (its process group) through the signal; a second cancel changes nothing. */
  cancel(by: string): void {
    if (this.cancelling.signal.aborted) return;
    const reason = new CancelReason(by);
    this.cancelling.abort(reason);
    if (!this.either.signal.aborted) this.either.abort(reason);
  }

  /** Resolves with the run's final result, once it is published. */
  ended(): Promise<Result> {
    if (this.final) return Promise.resolve(this.final);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The run's final result, published: the cancels waiting on it are answered. */
  finished(result: Result): void {
    this.final = result;
    for (const w of this.waiters.splice(0)) w(result);
  }
}
