/**
 * Actions that reboot the host (docs/configuration.md § Reboots): `running` → `rebooting` (journaled
 * and published before the reboot command runs) → after the agent starts again, `succeeded` only when
 * the boot id changed and the host's checks pass within reboot.healthy_within, else `failed`. A reboot
 * is never re-run: the journal holds `rebooting`, and a start settles it instead (restarts.ts).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/load.js';
import type { RebootConfig } from '../config/reboots.js';
import {
  bootVerdict,
  checksFailedError,
  goingDown,
  noBootIdError,
  parseBootId,
  stillUpError,
} from '../core/boot.js';
import type { Job } from '../core/resolve.js';
import { rebootInfoSchema } from '../core/formats.js';
import { makeResult, type Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import type { ExecOptions } from '../exec/steps.js';
import type { Isolation } from '../exec/wrap.js';
import type { Logger } from '../log.js';
import type { JobOutcome } from '../exec/rollback.js';
import { checkAfterBoot } from './boot-checks.js';
import type { Outcomes } from './outcomes.js';
import type { Publisher } from './publisher.js';
import type { ReplyTo } from './results.js';
import type { Queued } from './run-queue.js';
import { runJob } from './run-job.js';

/** What a reboot run ends in when the host goes down: no final now, it comes after the boot. */
export const REBOOTING = 'rebooting';

/** How long `rebooting` may take to reach the broker before the reboot goes ahead anyway. */
const ANNOUNCE_WAIT_MS = 5000;

/** Tells the stagger group how a reboot ended (staggered-runs.ts): released only when it passed. */
export type AfterReboot = (result: Result) => Result;

export class Reboots {
  /** Ends every wait for the host to go down: the agent is stopping (the shutdown has begun). */
  private readonly stop = new AbortController();

  constructor(
    private readonly config: Config,
    private readonly topics: HostTopics,
    private readonly outcomes: Outcomes,
    private readonly sink: Publisher,
    private readonly log: Logger,
    private readonly isolation: Isolation | undefined,
    /** The stagger group's side of a settled reboot (releases it, or says it stays held). */
    private readonly afterReboot: AfterReboot,
  ) {}

  /** The action's reboot settings, when it reboots the host. */
  of(action: string | null): RebootConfig | undefined {
    return action === null ? undefined : this.config.actions[action]?.reboot;
  }

  /** The agent is stopping: a reboot waiting for the host to go down stops waiting (its result stays `rebooting`). */
  stopping(): void {
    this.stop.abort();
  }

  /**
   * Runs a reboot action: its steps before the last as usual, then `rebooting`, then the last command
   * (the reboot). Returns REBOOTING when the host is going down (the final comes after the boot), else
   * the outcome of a reboot that did not happen. `quiet` stops the queue's delayed `running` message.
   */
  async run(
    q: Queued,
    running: Result,
    opts: ExecOptions,
    quiet: () => void,
  ): Promise<JobOutcome | typeof REBOOTING> {
    const spec = this.of(q.job.action);
    if (!spec) throw new Error(`${q.job.action} is not a reboot action`);
    // The post-boot check is not a deployment's: it runs after the boot, not after the command.
    const job: Job = { ...q.job, health: undefined, rollback: undefined };
    const last = job.commands.at(-1);
    if (!last) throw new Error('a reboot action has at least one command');
    let before: JobOutcome | undefined;
    if (job.commands.length > 1) {
      const first = job.commands.slice(0, -1);
      before = await runJob({ ...job, commands: first }, this.config, opts);
      // One step run alone reports no `steps`: the result lists it as a steps action's would.
      const [only] = first;
      if (!before.steps && only)
        before.steps = [{ argv: only, exit_code: before.exit_code, duration_ms: before.duration_ms }];
      if (before.status !== 'succeeded') return before;
    }
    const bootId = await readBootId(spec.boot_id_file);
    if ('error' in bootId) return this.notStarted(noBootIdError(spec.boot_id_file, bootId.error), before);

    quiet();
    const downAt = new Date();
    const rebooting = makeResult(this.config.host, q.ref, {
      status: REBOOTING,
      executed_at: running.executed_at,
      ...(before ? outputOf(before) : {}),
      ...(before?.steps ? { steps: before.steps } : {}),
      reboot: { boot_id_before: bootId.id, down_at: downAt.toISOString() },
    });
    // Journaled (fsync) and at the broker before the host goes down: HA shows `rebooting`, not `running`.
    this.outcomes.progress(running);
    await within(
      Promise.all([this.outcomes.rebooting(rebooting), this.publishState(rebooting)]),
      ANNOUNCE_WAIT_MS,
    );
    this.log.warn({ id: q.ref.id, action: q.job.action, boot_id: bootId.id }, 'rebooting the host');

    const ctl = new AbortController();
    const abort = () => ctl.abort();
    opts.signal?.addEventListener('abort', abort, { once: true });
    this.stop.signal.addEventListener('abort', abort, { once: true });
    try {
      // No onSpawn: its `running` record would replace `rebooting` in the journal.
      const cmd = await runJob({ ...job, commands: [last] }, this.config, {
        ...opts,
        signal: ctl.signal,
        onSpawn: undefined,
      });
      const steps = before?.steps && [
        ...before.steps,
        { argv: last, exit_code: cmd.exit_code, duration_ms: cmd.duration_ms },
      ];
      const merged: JobOutcome = {
        ...cmd,
        executed_at: running.executed_at ?? cmd.executed_at,
        ...(steps ? { steps } : {}),
      };
      if (!goingDown(cmd)) return this.ended(q, merged);
      if (ctl.signal.aborted) return REBOOTING;
      // `systemctl reboot` returns at once: the shutdown stops the agent a moment later.
      try {
        await sleep(spec.down_within, undefined, { signal: ctl.signal });
      } catch {
        return REBOOTING; // stopping: the host is going down
      }
      const now = await readBootId(spec.boot_id_file);
      if ('id' in now && now.id !== bootId.id) return REBOOTING; // rebooted under a live agent: the next start settles it
      return this.ended(q, {
        ...merged,
        status: 'failed',
        error_code: 'not_rebooted',
        error: stillUpError(spec.down_within),
        completed_at: new Date().toISOString(),
      });
    } finally {
      opts.signal?.removeEventListener('abort', abort);
      this.stop.signal.removeEventListener('abort', abort);
    }
  }

  /**
   * At start: a `rebooting` id the journal holds. Never re-run: the boot id says whether the host
   * rebooted, then the checks decide. Settles in the background (the checks may take minutes).
   */
  settle(r: Result, replyTo: ReplyTo | undefined): void {
    this.decide(r).then(
      (final) => {
        // Stopped during the checks: still `rebooting`, decided again at the next start.
        if (this.stop.signal.aborted) return;
        const settled = this.afterReboot(final);
        this.outcomes.rebooted(settled, replyTo);
        void this.publishState(settled);
      },
      (err: unknown) => this.log.error({ err, id: r.id }, 'could not settle a reboot'),
    );
  }

  private async decide(r: Result): Promise<Result> {
    const spec = this.of(r.action);
    const ref = { id: r.id, action: r.action, transaction: r.transaction };
    const backAt = new Date(Date.now() - process.uptime() * 1000);
    const file = spec?.boot_id_file;
    // Read back from state_dir: checked like anything from a file (docs/security.md).
    const before = rebootInfoSchema.safeParse(r.reboot);
    if (!before.success || !spec || !file)
      return makeResult(this.config.host, ref, {
        status: 'failed',
        error_code: 'not_rebooted',
        error: `the journal holds this reboot without its boot id, or ${r.action ?? 'its action'} is no longer a reboot action: whether the host rebooted is unknown — check the host, then send a new request`,
        executed_at: r.executed_at,
        completed_at: new Date().toISOString(),
      });
    const now = await readBootId(file);
    const verdict = bootVerdict(before.data, 'id' in now ? now.id : undefined, backAt, file);
    const base = {
      executed_at: r.executed_at,
      ...outputOf(r),
      ...(r.steps ? { steps: r.steps } : {}),
      reboot: verdict.info,
    };
    if (!verdict.rebooted)
      return makeResult(this.config.host, ref, {
        ...base,
        status: 'failed',
        error_code: 'not_rebooted',
        error: verdict.error,
        completed_at: new Date().toISOString(),
        duration_ms: this.since(r),
      });
    this.log.info({ id: r.id, downtime_ms: verdict.info.downtime_ms }, 'the host rebooted; checking it');
    this.outcomes.progress(makeResult(this.config.host, ref, { ...base, status: REBOOTING }));
    const health = await checkAfterBoot(this.config, r.action ?? '', spec.healthy_within, {
      signal: this.stop.signal,
      isolation: this.isolation,
    });
    const failed = health !== undefined && !health.check.passed;
    return makeResult(this.config.host, ref, {
      ...base,
      status: failed ? 'failed' : 'succeeded',
      exit_code: failed ? health.check.exit_code : 0,
      ...(health ? { health: health.check } : {}),
      ...(failed
        ? {
            error_code: 'exit_nonzero' as const,
            error: checksFailedError(
              verdict.info.downtime_ms ?? 0,
              health.why,
              spec.healthy_within,
              health.check.attempts,
            ),
          }
        : {}),
      completed_at: new Date().toISOString(),
      duration_ms: this.since(r),
    });
  }

  /** A failed reboot known before the restart: the queue publishes it as the final. */
  private ended(q: Queued, outcome: JobOutcome): JobOutcome {
    void this.publishState(makeResult(this.config.host, q.ref, outcome));
    return outcome;
  }

  private notStarted(error: string, before: JobOutcome | undefined): JobOutcome {
    const now = new Date().toISOString();
    return {
      status: 'failed',
      exit_code: -1,
      stdout: before?.stdout ?? '',
      stderr: before?.stderr ?? '',
      stdout_truncated: before?.stdout_truncated ?? false,
      stderr_truncated: before?.stderr_truncated ?? false,
      executed_at: before?.executed_at ?? now,
      completed_at: now,
      duration_ms: before?.duration_ms ?? 0,
      ...(before?.steps ? { steps: before.steps } : {}),
      error_code: 'not_rebooted',
      error,
    };
  }

  private since(r: Result): number | undefined {
    return r.executed_at ? Math.max(0, Date.now() - Date.parse(r.executed_at)) : undefined;
  }

  /** `P/H/reboot`, retained: HA's Last reboot sensor keeps showing it while the host is down. */
  private publishState(result: Result): Promise<void> {
    return this.sink
      .publish(this.topics.reboot, JSON.stringify(result), { retain: true })
      .catch((err: unknown) => this.log.warn({ err }, 'could not publish the reboot state'));
  }
}

/** Settles when `p` does or after `ms`, whichever is first; never rejects (p's own errors are handled). */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** What the steps before the reboot printed: it stays with the result through the boot. */
function outputOf(r: Pick<Result, 'stdout' | 'stderr' | 'stdout_truncated' | 'stderr_truncated'>) {
  return {
    stdout: r.stdout,
    stderr: r.stderr,
    stdout_truncated: r.stdout_truncated,
    stderr_truncated: r.stderr_truncated,
  };
}

/** The boot id now; a file that cannot be read or holds no id says why. */
export async function readBootId(file: string): Promise<{ id: string } | { error: string }> {
  try {
    const text = await readFile(file, { encoding: 'utf8', flag: 'r' });
    const id = parseBootId(text.slice(0, 256));
    return id ? { id } : { error: 'it holds no boot id' };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}
