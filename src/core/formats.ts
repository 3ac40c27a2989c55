/**
 * Every JSON format the agent publishes, as zod schemas: the one source of their TypeScript types
 * (z.infer), of the checks the CLI and the tests run on what they read, and of the JSON Schema
 * files in docs/schema/ (`npm run schema`; docs/mqtt-api.md § JSON Schemas). The builders
 * (core/result.ts, agent/heartbeat.ts, core/probes.ts, agent/live-output.ts, agent/audit.ts) return
 * these types, so a writer cannot drift from its schema without failing to compile.
 *
 * Strict objects: an unknown key is not part of the contract. A reader that must accept a newer
 * agent's extra keys uses `.loose()` (cli/send.ts prints a result whole).
 */
import { z } from 'zod';
import { parseBoundedJson } from './json.js';

const int = z.number().int();
const count = int.nonnegative();
const isoTime = z.iso.datetime();

export const FINAL_STATUSES = [
  'succeeded',
  'failed',
  'timed_out',
  'rejected',
  'interrupted',
  'cancelled',
] as const;
export const finalStatusSchema = z.enum(FINAL_STATUSES);
/** `rebooting`: a reboot action's command has run and the host is going down; the final comes after the boot. */
export const resultStatusSchema = z.enum([...FINAL_STATUSES, 'running', 'scheduled', 'rebooting']);

/** docs/mqtt-api.md § Error codes. */
export const errorCodeSchema = z.enum([
  'invalid_request',
  'unknown_action',
  'invalid_params',
  'not_whitelisted',
  'execution_disabled',
  'busy',
  'expired',
  'bad_signature',
  'replayed',
  'retained_ignored',
  'timeout',
  'not_found',
  'sudo_failed',
  'denied',
  'exit_nonzero',
  'interrupted',
  'shutting_down',
  // A reboot action whose host came back with the same boot id, or never went down (docs/configuration.md § Reboots).
  'not_rebooted',
  'cancelled',
  // Extensions (deployments, docs/configuration.md § Deployments): a step or the health check failed and the rollback ran.
  'rolled_back',
  'rollback_failed',
]);

export const stepResultSchema = z.strictObject({
  /** The step's argv after param substitution, before any sudo wrapping. */
  argv: z.array(z.string()),
  exit_code: int,
  duration_ms: count,
});

export const healthTrySchema = z.strictObject({
  attempt: count,
  passed: z.boolean(),
  exit_code: int,
  http_status: int.optional(),
  duration_ms: count,
});

export const healthResultSchema = z.strictObject({
  passed: z.boolean(),
  attempts: count,
  /** Of the last try; for the http form 0 when it passed, else -1 (no process ran). */
  exit_code: int,
  /** Of the last try: the command's output, or the response body / connection error, at most 500 characters. */
  output: z.string(),
  /** The http form: the status of the last answer, when there was one. */
  http_status: int.optional(),
  /** Every try, in order. */
  tries: z.array(healthTrySchema).optional(),
});

export const rollbackResultSchema = z.strictObject({
  status: z.enum(['succeeded', 'failed', 'timed_out', 'interrupted']),
  steps: z.array(stepResultSchema),
});

export const attemptResultSchema = z.strictObject({
  attempt: count,
  status: finalStatusSchema,
  exit_code: int,
  duration_ms: count,
  error_code: errorCodeSchema.optional(),
});

/** Extension: what a reboot action's result knows of the reboot (docs/mqtt-api.md § Reboots). */
export const rebootInfoSchema = z.strictObject({
  /** The boot id (/proc/sys/kernel/random/boot_id) before the reboot command ran. */
  boot_id_before: z.string().max(64),
  /** The boot id the agent found when it started again. */
  boot_id_after: z.string().max(64).optional(),
  /** When the reboot command started: the last moment the host is known to have been up. */
  down_at: isoTime,
  /** When the agent started again. */
  back_at: isoTime.optional(),
  /** back_at − down_at: how long the host was away, at most (its shutdown and boot included). */
  downtime_ms: count.optional(),
});

/** `P/H/result/ID` and `P/H/result` (docs/mqtt-api.md § Result object); keys in this order. */
export const resultSchema = z.strictObject({
  id: z.string(),
  host: z.string(),
  action: z.string().nullable(),
  status: resultStatusSchema,
  exit_code: int,
  stdout: z.string(),
  stderr: z.string(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  error_code: errorCodeSchema.optional(),
  error: z.string().optional(),
  executed_at: isoTime.optional(),
  completed_at: isoTime.optional(),
  duration_ms: count.optional(),
  run_at: isoTime.optional(),
  steps: z.array(stepResultSchema).optional(),
  /** Extension: the health check of a deployment or a staggered run. */
  health: healthResultSchema.optional(),
  /** Extension: a deployment's rollback, when it ran. */
  rollback: rollbackResultSchema.optional(),
  /** Extension: each run of an action with `retry`; the result's other fields are the last one's. */
  attempts: z.array(attemptResultSchema).optional(),
  /** Extension: a reboot action's boot ids and downtime. */
  reboot: rebootInfoSchema.optional(),
  /** Extension: how a decision was made when that matters (a staggered run decided during an outage). */
  note: z.string().optional(),
  transaction: z.string().max(64).optional(),
});

/** The heartbeat's `stats`, exactly the contract's fields (docs/mqtt-api.md § Status and heartbeat). */
export const statsSchema = z.strictObject({
  executed: count,
  succeeded: count,
  failed: count,
  timed_out: count,
  rejected: count,
  avg_duration_ms: z.number().nonnegative(),
});

/** One action's figures in the heartbeat's `actions` extension. */
export const actionFiguresSchema = z.strictObject({
  /** Runs that ended: succeeded + failed + timed_out + interrupted + cancelled (the action's share of `stats.executed`). */
  count,
  succeeded: count,
  failed: count,
  timed_out: count,
  interrupted: count,
  /** Runs a cancel request stopped (docs/mqtt-api.md § Cancel). */
  cancelled: count,
  rejected: count,
  /** Nearest-rank percentiles of the durations of the last `samples` runs; null before the first. */
  p50_ms: z.number().nonnegative().nullable(),
  p95_ms: z.number().nonnegative().nullable(),
  samples: count,
  last_status: finalStatusSchema.nullable(),
  last_at: isoTime.nullable(),
});

const usedTotal = z.strictObject({ used: count, total: count });

/** `P/H/heartbeat` (docs/mqtt-api.md § Status and heartbeat). */
export const heartbeatSchema = z.strictObject({
  ts: isoTime,
  host: z.string(),
  version: z.string(),
  uptime_s: count,
  load: z.tuple([z.number(), z.number(), z.number()]),
  memory: usedTotal,
  disk: usedTotal,
  running: count,
  queued: count,
  pending_results: count,
  stats: statsSchema,
  /** Extension: per-action counters and p50/p95 durations, every configured action. */
  actions: z.record(z.string(), actionFiguresSchema).optional(),
  /** Extension: present (true) only when mqtt.insecure turned TLS verification off. */
  insecure: z.literal(true).optional(),
  /** Extension: present only while state_dir cannot be written — why new requests are refused `busy`. */
  degraded: z.string().optional(),
});

/** `P/H/output/ID` (docs/mqtt-api.md § Live output). */
export const outputMessageSchema = z.strictObject({
  id: z.string(),
  stream: z.enum(['stdout', 'stderr']),
  seq: count,
  lines: z.array(z.string()),
  truncated: z.literal(true).optional(),
});

export const PROBE_TYPES = ['http', 'tcp', 'ping', 'service', 'disk', 'process', 'command'] as const;

/** `P/H/probe/NAME` (docs/mqtt-api.md § Probes); the kind-specific keys come last. */
export const probeStateSchema = z.strictObject({
  name: z.string(),
  type: z.enum(PROBE_TYPES),
  ok: z.boolean(),
  /** A boolean only from a command probe with parse: exit_code or match. */
  value: z.union([z.number(), z.string(), z.boolean()]).nullable(),
  /** ms or % for the built-in kinds; a command probe's configured unit. */
  unit: z.string().max(32).nullable(),
  duration_ms: count,
  checked_at: isoTime,
  error: z.string().max(200).nullable(),
  /** http only. */
  status_code: int.nullable().optional(),
  /** ping only. */
  loss_percent: z.number().nullable().optional(),
  /** disk only (`free_bytes`: available to users). */
  used_bytes: count.nullable().optional(),
  free_bytes: count.nullable().optional(),
  total_bytes: count.nullable().optional(),
  /** command only: the exit code, null when no process ran or it was killed for its timeout. */
  exit_code: int.nullable().optional(),
  /** command with parse: json only: the object's other top-level keys (at most 4 KiB, never `state`). */
  attributes: z.record(z.string(), z.unknown()).optional(),
});

/** `P/H/switch/NAME` (docs/mqtt-api.md § Switches): the probe's verdict and the last on/off request. */
export const switchStateSchema = z.strictObject({
  name: z.string(),
  /** From the switch's probe; null while the probe fails (HA shows unknown). */
  state: z.enum(['ON', 'OFF']).nullable(),
  probe: z.string(),
  checked_at: isoTime.nullable(),
  /** Why the last turn_on/turn_off did not succeed, else why the probe fails; null when all is well. */
  error: z.string().max(400).nullable(),
  last_action: z.string().nullable(),
  last_status: resultStatusSchema.nullable(),
  last_id: z.string().nullable(),
});

/** One line of state_dir/audit.jsonl (docs/security.md § Audit log). */
export const auditLineSchema = z.strictObject({
  ts: isoTime,
  id: z.string(),
  host: z.string(),
  action: z.string().nullable(),
  topic: z.string(),
  client: z.string().nullable(),
  client_claimed: z.string().nullable(),
  decision: z.enum(['accepted', 'rejected', 'repeat']),
  status: resultStatusSchema,
  error_code: errorCodeSchema.nullable(),
  exit_code: int,
  duration_ms: count.nullable(),
});

/**
 * A payload read off the wire with `schema`: depth-bounded JSON first (core/json.ts), then the
 * schema; undefined when either fails. Objects are read `.loose()`: a newer agent's extra keys are
 * kept, never a reason to drop a message.
 */
export function readFormat<T>(schema: z.ZodType<T>, payload: Buffer | string): T | undefined {
  const json = parseBoundedJson(payload.toString());
  if (!json.ok) return undefined;
  const r = schema.safeParse(json.value);
  return r.success ? r.data : undefined;
}

/** A result as a reader takes it: the contract's keys checked, extra keys kept. */
export const resultReader = resultSchema.loose();

export type FinalStatus = z.infer<typeof finalStatusSchema>;
export type ResultStatus = z.infer<typeof resultStatusSchema>;
export type ErrorCode = z.infer<typeof errorCodeSchema>;
export type StepResult = z.infer<typeof stepResultSchema>;
export type HealthTry = z.infer<typeof healthTrySchema>;
export type HealthResult = z.infer<typeof healthResultSchema>;
export type RollbackResult = z.infer<typeof rollbackResultSchema>;
export type AttemptResult = z.infer<typeof attemptResultSchema>;
export type RebootInfo = z.infer<typeof rebootInfoSchema>;
export type Result = z.infer<typeof resultSchema>;
export type Stats = z.infer<typeof statsSchema>;
export type ActionFigures = z.infer<typeof actionFiguresSchema>;
export type Heartbeat = z.infer<typeof heartbeatSchema>;
export type OutputMessage = z.infer<typeof outputMessageSchema>;
export type ProbeState = z.infer<typeof probeStateSchema>;
export type SwitchState = z.infer<typeof switchStateSchema>;
export type AuditLine = z.infer<typeof auditLineSchema>;
