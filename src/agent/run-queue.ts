/**
 * The queue and the runs: accepted requests wait for one of execution.concurrency slots, then run —
 * `running` announced, live output streamed, the job run (run-job.ts) — and end in one final result.
 * Staggered runs start when their group allows it (staggered-runs.ts), outside the slots.
 */
import type { Config } from '../config/load.js';
import { asCancelled } from '../core/cancel.js';
import type { Job } from '../core/resolve.js';
import { makeResult, type Result } from '../core/result.js';
import type { RunOptions } from '../exec/rollback.js';
import { WorkDirs } from '../exec/work-dirs.js';
import type { Isolation } from '../exec/wrap.js';
import type { Logger } from '../log.js';
import type { Journal } from './journal.js';
import { LiveOutput } from './live-output.js';
import type { Accepted, Outcomes } from './outcomes.js';
import { processStart } from './restart-check.js';
import { REBOOTING, type Reboots } from './reboots.js';
import { RunControl } from './run-control.js';
import { runJob } from './run-job.js';
import type { StaggerConfig } from './stagger-turns.js';

/** An accepted request on its way to running. */
export interface Queued extends Accepted {
  job: Job;
  stagger: StaggerConfig | undefined;
  /** How a staggered run was decided, when that matters (an outage). */
  note?: string | undefined;
}

/** How long a command runs before its `running` result is published (docs/mqtt-api.md: 1 s, sooner allowed). */
const RUNNING_ANNOUNCE_MS = 1000;

/** What happens after a staggered run, before its final result (staggered-runs.ts). */
export type AfterStaggered = (
  q: Queued,
  stagger: StaggerConfig,
  result: Result,
  signal: AbortSignal,
) => Promise<Result>;

/** Which run an observer hears of: its id, and how many steps its action has. */
export interface RunInfo {
  id: string;
  steps: number;
}

/**
 * Told when a command of an action starts, prints, moves to its next step and ends (the update
 * entity's in_progress: agent/updates.ts; the Running sensor: agent/running.ts).
 */
export interface JobObserver {
  /** true: `output` hears stderr too, not only stdout. */
  readonly stderr?: boolean;
  started(action: string, run: RunInfo): void;
  output(action: string, chunk: Buffer, run: RunInfo): void;
  /** Step `k` of `run.steps` (from 1) is starting. */
  step?(action: string, k: number, run: RunInfo): void;
  ended(action: string, run: RunInfo): void;
}

export class RunQueue {
  /** Set by the agent before start; their exceptions are logged, never thrown into a run. */
  readonly observers: JobObserver[] = [];
  private readonly queue: Queued[] = [];
  /** In the order they started: the first is the oldest (what `cancel: "@oldest"` stops). */
  private readonly running = new Map<string, RunControl>();
  private readonly idle: (() => void)[] = [];
  private readonly workDirs: WorkDirs;

  constructor(
    private readonly config: Config,
    private readonly journal: Journal,
    private readonly outcomes: Outcomes,
    private readonly log: Logger,
    /** Who runs the commands (docs/security.md § Commands run as another user). */
    private readonly isolation: Isolation | undefined,
    private readonly afterStaggered: AfterStaggered,
    /** Actions that reboot the host run through here (agent/reboots.ts). */
    private readonly reboots?: Reboots,
  ) {
    // Made ahead for a few commands at once: a c16 burst still costs the main thread little.
    this.workDirs = new WorkDirs(Math.min(config.execution.concurrency, 4));
  }

  start(): void {
    this.workDirs.start();
  }

  /** Nothing will run any more (after settle): the directories made ahead are removed. */
  close(): void {
    this.workDirs.close();
  }

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.queue.length;
  }

  push(q: Queued): void {
    this.queue.push(q);
    this.pump();
  }

  /** A staggered run starts when the group allows it, not behind the concurrency queue: its start time is the group's record. */
  startStaggered(q: Queued, note: string | undefined): void {
    q.note = note;
    this.outcomes.remember(() =>
      this.journal.record(makeResult(this.config.host, q.ref, { status: 'running' }), undefined, false),
    );
    void this.run(q);
  }

  /** The run of request `id`, while it runs; `oldest`: the one that started first. */
  control(id: string | 'oldest'): RunControl | undefined {
    return id === 'oldest' ? this.running.values().next().value : this.running.get(id);
  }

  /** Takes request `id` out of the queue, if it is still waiting for a slot (a cancel: cancel.ts). */
  withdraw(id: string): Queued | undefined {
    const at = this.queue.findIndex((q) => q.ref.id === id);
    return at < 0 ? undefined : this.queue.splice(at, 1)[0];
  }

  /** Takes every request still waiting for a slot: it will never start. */
  takeWaiting(): Queued[] {
    return this.queue.splice(0);
  }

  /** Resolves once nothing runs; kills what still runs after `graceMs` (its result: `interrupted`). */
  async settle(graceMs: number): Promise<void> {
    if (this.running.size === 0) return;
    const timer = setTimeout(() => {
      for (const ctl of this.running.values()) ctl.stop();
    }, graceMs);
    await new Promise<void>((resolve) => this.idle.push(resolve));
    clearTimeout(timer);
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
    const ctl = new RunControl(q.ref.id, q.job.action, q.job.sudo);
    const info: RunInfo = { id: q.ref.id, steps: q.job.commands.length };
    this.running.set(q.ref.id, ctl);
    let final: Result | undefined;
    let announce: NodeJS.Timeout | undefined;
    try {
      const running = makeResult(this.config.host, q.ref, {
        status: 'running',
        executed_at: new Date().toISOString(),
      });
      this.outcomes.remember(() => this.journal.record(running, undefined, false));
      this.observe((o, a) => o.started(a, info), q.ref.action);
      // `running` only for commands still running after a moment (the contract's 1 s): a quick command's
      // final result is then the only message on its topic, and never waits behind a delayed ACK (Nagle)
      // at a broker that leaves TCP_NODELAY off.
      announce = setTimeout(() => this.outcomes.progress(running), RUNNING_ANNOUNCE_MS);
      const live = new LiveOutput(q.ref.id, this.config.execution.max_output, (msg) =>
        this.outcomes.output(msg),
      );
      const exec: RunOptions = {
        path: this.config.execution.path,
        maxOutput: this.config.execution.max_output,
        isolation: this.isolation,
        workDirs: this.workDirs,
        signal: ctl.signal,
        stopSignal: ctl.stopSignal,
        onOutput: (stream, chunk) => {
          live.push(stream, chunk);
          this.observe((o, a) => o.output(a, chunk, info), q.ref.action, stream);
        },
        onStep: (k) => this.observe((o, a) => o.step?.(a, k, info), q.ref.action),
        // Recorded as it starts: a restart after a crash stops what is left of it (restart-check.ts).
        onSpawn: (pid) => {
          const start = processStart(pid);
          if (start !== undefined)
            this.outcomes.remember(() =>
              this.journal.record(running, undefined, false, { proc: { pgid: pid, start } }),
            );
        },
      };
      const outcome = this.reboots?.of(q.job.action)
        ? await this.reboots.run(q, running, exec, () => clearTimeout(announce))
        : await runJob(q.job, this.config, exec);
      // The last lines go out before the final result, so a follower sees them in order.
      live.flush(true);
      // The host is going down: the final comes after the boot (reboots.ts).
      if (outcome === REBOOTING) return;
      let result = makeResult(this.config.host, q.ref, { ...outcome, ...(q.note ? { note: q.note } : {}) });
      if (q.stagger) result = await this.afterStaggered(q, q.stagger, result, ctl.signal);
      // Stopped by a cancel request (cancel.ts): `cancelled`, unless it succeeded before the kill.
      const by = ctl.cancelledBy;
      final = by === undefined ? result : asCancelled(result, by);
      this.outcomes.finish(q, final);
    } catch (err) {
      this.log.error({ err, id: q.ref.id }, 'running a job failed unexpectedly');
      final = makeResult(this.config.host, q.ref, {
        status: 'failed',
        error_code: 'exit_nonzero',
        error: `the agent could not run the command: ${(err as Error).message}`,
        completed_at: new Date().toISOString(),
      });
      this.outcomes.finish(q, final);
    } finally {
      clearTimeout(announce);
      this.running.delete(q.ref.id);
      if (final) ctl.finished(final);
      this.observe((o, a) => o.ended(a, info), q.ref.action);
      this.pump();
    }
  }

  /** Output: stdout, and stderr to the observers that ask for it. */
  private observe(
    call: (o: JobObserver, action: string) => void,
    action: string | null,
    stream: 'stdout' | 'stderr' = 'stdout',
  ): void {
    if (action === null) return;
    for (const o of this.observers) {
      if (stream === 'stderr' && o.stderr !== true) continue;
      try {
        call(o, action);
      } catch (err) {
        this.log.warn({ err, action }, 'the job observer failed');
      }
    }
  }
}
