/**
 * A host's checks after a reboot (docs/configuration.md § Reboots): the action's health check (or its
 * stagger group's), else every configured probe, tried until they pass or reboot.healthy_within ends.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/load.js';
import type { ProbeConfig } from '../config/probes.js';
import type { HealthCheckConfig } from '../config/schema.js';
import type { HealthResult, HealthTry } from '../core/result.js';
import type { Isolation } from '../exec/wrap.js';
import { runHealthCheck } from '../exec/health.js';
import { runCheck } from './probe-checks.js';

/** Between two rounds of the checks, when the check itself names no delay. */
const CHECK_DELAY_MS = 2000;
/** Kept of a check's output, and of its tries: a retained result stays small. */
const OUTPUT_CHARS = 500;
const MAX_TRIES = 20;

interface Ctx {
  /** Aborted when the agent stops: the checks end at once (and their verdict is not published). */
  signal: AbortSignal;
  isolation: Isolation | undefined;
}

/**
 * The host's checks after the boot, tried until they pass or `withinMs` ends: the action's health
 * check (or its stagger group's), else every configured probe; none configured → undefined (the boot
 * id alone decides).
 */
export async function checkAfterBoot(
  config: Config,
  action: string,
  withinMs: number,
  ctx: Ctx,
): Promise<{ check: HealthResult; why: string } | undefined> {
  const a = config.actions[action];
  const health = a?.health ?? a?.stagger?.health;
  const probes = Object.entries(config.probes);
  if (!health && probes.length === 0) return undefined;
  const deadline = Date.now() + withinMs;
  const delay = health?.delay || CHECK_DELAY_MS;
  const tries: HealthTry[] = [];
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    const one = health ? await healthTry(config, health, ctx) : await probesTry(config, probes, ctx);
    tries.push({
      attempt,
      passed: one.passed,
      exit_code: one.exit_code,
      duration_ms: Math.round(performance.now() - t0),
    });
    const check = (): { check: HealthResult; why: string } => ({
      check: {
        passed: one.passed,
        attempts: attempt,
        exit_code: one.exit_code,
        output: one.output.slice(0, OUTPUT_CHARS),
        tries: tries.slice(-MAX_TRIES),
      },
      why: one.why,
    });
    if (one.passed || Date.now() + delay > deadline || ctx.signal.aborted) return check();
    try {
      await sleep(delay, undefined, { signal: ctx.signal });
    } catch {
      return check(); // the agent is stopping: settle() publishes nothing then
    }
  }
}

async function healthTry(config: Config, health: HealthCheckConfig, ctx: Ctx) {
  const r = await runHealthCheck(
    { ...health, retries: 1 },
    {
      path: config.execution.path,
      maxOutput: 2000,
      signal: ctx.signal,
      isolation: ctx.isolation,
    },
  );
  const last = r.http_status !== undefined ? `HTTP ${r.http_status}` : `exit ${r.exit_code}`;
  const said = r.output.trim().split('\n')[0] ?? '';
  return {
    passed: r.passed,
    exit_code: r.exit_code,
    output: r.output,
    why: `its health check failed (${last}${said ? `: ${said}` : ''})`,
  };
}

async function probesTry(config: Config, probes: [string, ProbeConfig][], ctx: Ctx) {
  const failed: string[] = [];
  for (const [name, probe] of probes) {
    const reading = await runCheck(probe, { path: config.execution.path, signal: ctx.signal });
    if (!reading.ok) failed.push(`${name}${reading.error ? ` (${reading.error})` : ''}`);
  }
  const output =
    failed.length === 0
      ? `probes passed: ${probes.map(([n]) => n).join(', ')}`
      : `probe ${failed.join(', ')} failed`;
  return { passed: failed.length === 0, exit_code: failed.length === 0 ? 0 : -1, output, why: output };
}
