/**
 * One run of a command probe: built into a job and run by the same code as an action (exec/steps.ts)
 * — argv only, the run user or sudo, prlimit limits, the timeout that kills the process group, the
 * output cap — after the same deny-list check (job-check.ts). docs/configuration.md § command.
 */
import type { Config } from '../config/load.js';
import type { ProbeOf } from '../config/probes.js';
import { commandReading } from '../core/command-probes.js';
import type { ProbeReading } from '../core/probes.js';
import type { Job } from '../core/resolve.js';
import { executeJob } from '../exec/steps.js';
import type { Isolation } from '../exec/wrap.js';
import { checkJob } from './job-check.js';

export interface CommandContext {
  config: Pick<Config, 'execution' | 'security'>;
  isolation: Isolation | undefined;
  /** Aborted when the agent stops: the command's group is killed and the reading thrown away. */
  signal: AbortSignal;
}

// A probe's command is killed this soon after SIGTERM: it holds up the next check, not a user's request.
const KILL_GRACE_MS = 1000;

/** The job an action with this argv would be; `sudo` falls back to execution.sudo as an action's does. */
export function probeJob(probe: ProbeOf<'command'>, config: CommandContext['config']): Job {
  return {
    // Not an action name (":" is not allowed in one): nothing of an action's applies to it.
    action: 'probe:',
    params: {},
    commands: [probe.argv],
    sudo: probe.sudo ?? config.execution.sudo,
    timeoutMs: probe.timeout,
    actionTimeoutMs: probe.timeout,
    env: probe.env,
    limits: probe.limits ?? config.security.limits,
  };
}

export async function checkCommand(probe: ProbeOf<'command'>, ctx: CommandContext): Promise<ProbeReading> {
  const checked = checkJob(probeJob(probe, ctx.config), { actions: {}, security: ctx.config.security });
  if (!checked.ok)
    return {
      ok: false,
      value: null,
      error: checked.rejection.error,
      unit: probe.unit ?? null,
      extra: { exit_code: null },
    };
  const run = await executeJob(checked.job, {
    path: ctx.config.execution.path,
    maxOutput: ctx.config.execution.max_output,
    killGraceMs: KILL_GRACE_MS,
    signal: ctx.signal,
    isolation: ctx.isolation,
  });
  return commandReading(probe, run);
}
