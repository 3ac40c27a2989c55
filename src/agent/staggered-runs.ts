/**
 * The stagger adapter: the pipeline's side of fleet-wide stagger (docs/stagger.md). It owns the
 * coordinator, hands it the accepted requests of actions with `stagger`, tells their senders when they
 * will run, and releases a group once a run's health check passed.
 */
import type { Config } from '../config/load.js';
import { makeResult, rejected, type Result } from '../core/result.js';
import type { Logger } from '../log.js';
import { runHealthCheck } from '../exec/health.js';
import type { Outcomes } from './outcomes.js';
import type { Queued } from './run-queue.js';
import type { Publisher } from './publisher.js';
import { StaggerCoordinator } from './stagger.js';
import type { StaggerConfig, StaggerItem } from './stagger-turns.js';
import type { Isolation } from '../exec/wrap.js';

/** What the stagger coordinator holds: a queued request of an action with `stagger`. */
type Staggered = Queued & StaggerItem;

export class StaggeredRuns {
  private readonly coordinator: StaggerCoordinator<Staggered>;

  constructor(
    private readonly config: Config,
    sink: Publisher,
    private readonly outcomes: Outcomes,
    /** Starts a run now: a staggered run starts when its group allows it, not behind the concurrency queue. */
    run: (q: Queued, note: string | undefined) => void,
    private readonly log: Logger,
    isConnected: () => boolean,
    private readonly isolation: Isolation | undefined,
  ) {
    const groups: [string, StaggerConfig][] = Object.values(config.actions).flatMap((a) =>
      a.stagger ? [[a.stagger.group, a.stagger] as [string, StaggerConfig]] : [],
    );
    this.coordinator = new StaggerCoordinator<Staggered>(
      { prefix: config.mqtt.prefix, host: config.host, stateDir: config.state_dir, groups },
      sink,
      {
        run,
        scheduled: (q, runAt, reason) => this.scheduled(q, runAt, reason),
        expire: (q, error) =>
          outcomes.finish(q, rejected(config.host, q.ref, { code: 'expired', error }, new Date())),
      },
      log.child({ module: 'stagger' }),
      isConnected,
    );
  }

  /** Reads the saved group records. */
  start(): void {
    this.coordinator.open();
  }

  submit(q: Queued, stagger: StaggerConfig, acceptedAt: number): void {
    // A reboot holds its group until the host is back and healthy (docs/stagger.md § Reboots).
    const holds = this.config.actions[q.job.action]?.reboot !== undefined;
    this.coordinator.submit({ ...q, stagger, id: q.ref.id, action: q.job.action, acceptedAt, holds });
  }

  /** A scheduled request taken out of its group before it started (a cancel: cancel.ts). */
  withdraw(id: string): Queued | undefined {
    return this.coordinator.withdraw(id);
  }

  pendingCount(): number {
    return this.coordinator.pendingCount();
  }

  onConnect(): void {
    this.coordinator.onConnect();
  }

  onDisconnect(): void {
    this.coordinator.onDisconnect();
  }

  /** A fleet or peer-status message; true when it was one. */
  onMessage(topic: string, payload: Buffer): boolean {
    return this.coordinator.onMessage(topic, payload);
  }

  /** Scheduled staggered runs stay in the journal and resume at the next start. */
  stop(): void {
    this.coordinator.stop();
  }

  private scheduled(q: Queued, runAt: Date, reason: string | undefined): void {
    const result = makeResult(this.config.host, q.ref, {
      status: 'scheduled',
      run_at: runAt.toISOString(),
      ...(reason ? { error: reason } : {}),
    });
    this.outcomes.scheduled(q, result, reason);
  }

  /**
   * A reboot's final, decided after the boot: its group is released only when it succeeded (the host
   * is back and its checks pass); otherwise it stays held and the result says so.
   */
  afterReboot(result: Result): Result {
    const group = result.action === null ? undefined : this.config.actions[result.action]?.stagger?.group;
    const record = group === undefined ? undefined : this.coordinator.recordOf(group, result.id);
    if (group === undefined || !record) return result;
    if (result.status === 'succeeded') {
      this.coordinator.release(group, { ...record, released: true });
      return result;
    }
    this.log.warn({ group, id: result.id }, 'a reboot failed; its group stays held');
    return {
      ...result,
      error: `${result.error ?? 'the reboot failed'}; group ${group} stays held so no other member goes down — run the action here again once it is fixed`,
    };
  }

  /** A staggered run with a health check releases its group only when the check passes. */
  async afterRun(q: Queued, stagger: StaggerConfig, result: Result, signal: AbortSignal): Promise<Result> {
    const health = stagger.health;
    const record = this.coordinator.recordOf(stagger.group, q.ref.id);
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
    if (check.passed) this.coordinator.release(stagger.group, { ...record, released: true });
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
}
