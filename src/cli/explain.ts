/** `homelab-cmd explain`: what a command or request would do — the exact argv, or why it would be refused. Nothing runs. */
import { loadConfig, type Config } from '../config/load.js';
import { checkJob } from '../agent/job-check.js';
import { formatDuration } from '../core/duration.js';
import { parseDelivery } from '../core/request.js';
import { resolveRequest } from '../core/resolve.js';
import { spawnArgv } from '../exec/steps.js';
import { UsageError } from '../errors.js';
import { configWarnings } from './check-config.js';
import { readUpRecord } from './up-record.js';
import { out, parse, type Verb } from './args.js';

export const explainVerb: Verb = {
  name: 'explain',
  usage: `Usage: homelab-cmd explain [--config FILE] [--action A] '<raw command or JSON request>'

Says which action would match, the exact argv that would be spawned (with sudo
and prlimit wrapping), the timeout, stagger and signature rules that apply —
or precisely why the agent would refuse it. Nothing runs. --action explains it
as if sent to P/H/cmd/A. Exit 0 when it would be accepted, 1 when refused.
Without --config: the config of the homelab-cmd up this user is running.`,
  async run(argv) {
    const { values, positionals } = parse(
      this,
      argv,
      { config: { type: 'string', short: 'c' }, action: { type: 'string', short: 'a' } },
      true,
    );
    if (values.help) return (out(this.usage), 0);
    const file = values.config ?? readUpRecord()?.config;
    if (!file)
      throw new UsageError(
        `--config is required (no homelab-cmd up of this user is running)\n\n${this.usage}`,
      );
    if (positionals.length !== 1)
      throw new UsageError(`give exactly one command or request (quote it)\n\n${this.usage}`);
    const { lines, accepted } = explain(loadConfig(file), positionals[0] ?? '', values.action);
    out(lines.join('\n'));
    return accepted ? 0 : 1;
  },
};

export function explain(
  config: Config,
  input: string,
  topicAction?: string,
): { lines: string[]; accepted: boolean } {
  const trimmed = input.trim();
  // Plain text is explained as a raw command (what `{"command": …}` would do); JSON as the request it is.
  const payload =
    trimmed.startsWith('{') || (topicAction !== undefined && trimmed === '')
      ? trimmed
      : JSON.stringify({ command: trimmed });
  const parsed = parseDelivery(
    { topicAction, payload: Buffer.from(payload), retained: false },
    Date.now(),
    () => '(agent-made id)',
  );
  const refused = (code: string, error: string) => ({
    lines: [`refused: ${code}`, `  ${error}`],
    accepted: false,
  });
  if (!parsed.ok) return refused(parsed.rejection.code, parsed.rejection.error);
  const resolved = resolveRequest(parsed.request, config.actions, {
    sudo: config.execution.sudo,
    timeoutMs: config.execution.timeout,
    limits: config.security.limits,
  });
  if (!resolved.ok) return refused(resolved.rejection.code, resolved.rejection.error);
  // Path params resolved on this machine's file system, and the deny-list, as the agent would.
  const checked = checkJob(resolved.job, config);
  if (!checked.ok) return refused(checked.rejection.code, checked.rejection.error);
  const job = checked.job;
  const lines = [`action:    ${job.action}`, `params:    ${JSON.stringify(job.params)}`];
  const spawned = (argv: string[]) => {
    const s = spawnArgv(argv, job, config.execution.path);
    return 'argv' in s
      ? JSON.stringify(s.argv)
      : `${JSON.stringify(argv)} — would fail: ${s.code}: ${s.error}`;
  };
  for (const [i, argv] of job.commands.entries())
    lines.push(`${job.commands.length > 1 ? `step ${i + 1}:` : 'argv:     '} ${spawned(argv)}`);
  const health = job.health;
  if (health) {
    const probe = health.http
      ? `GET ${health.http.url} must answer ${health.http.status}`
      : `${JSON.stringify(health.argv)} must exit 0 (no sudo)`;
    lines.push(
      `health:    ${probe}; ${health.retries} tries, ${formatDuration(health.delay)} apart, ${formatDuration(health.timeout)} each`,
    );
  }
  for (const [i, argv] of (job.rollback ?? []).entries()) lines.push(`rollback ${i + 1}: ${spawned(argv)}`);
  if (job.rollback)
    lines.push(
      `           (when a step${health ? ' or the health check' : ''} fails; its own budget of ${formatDuration(job.actionTimeoutMs)})`,
    );
  if (job.retry)
    lines.push(
      `retry:     up to ${job.retry.attempts} attempts, waiting ${formatDuration(job.retry.backoffMs)} then doubling (idempotent action)`,
    );
  const action = config.actions[job.action];
  const sec = config.security.require_signature;
  const signed = sec === 'all' || (sec === 'privileged' && job.sudo);
  lines.push(
    `sudo:      ${job.sudo ? 'yes (sudo -n, with coreutils timeout inside)' : 'no'}`,
    `timeout:   ${formatDuration(job.timeoutMs)}${job.timeoutMs !== job.actionTimeoutMs ? ` (the action allows ${formatDuration(job.actionTimeoutMs)})` : ''}`,
    `stagger:   ${action?.stagger ? `group ${action.stagger.group}, one run per ${formatDuration(action.stagger.interval)} across the fleet` : 'none'}`,
    `signature: ${signed ? `required (security.require_signature: ${sec})` : 'not required'}`,
  );
  if (!config.execution.enabled)
    return {
      lines: [...lines, 'refused: execution_disabled', `  execution.enabled is false in ${config.source}`],
      accepted: false,
    };
  // Valid but doubtful (a glob no shell expands…): never "would run: yes" without saying so.
  const warnings = configWarnings(config, job.action);
  if (warnings.length > 0)
    return {
      lines: [
        ...lines,
        ...warnings.map((w) => `warning:   ${w}`),
        `would run: yes, but read the ${warnings.length} warning(s) above first (nothing was run)`,
      ],
      accepted: true,
    };
  return { lines: [...lines, 'would run: yes (nothing was run)'], accepted: true };
}
