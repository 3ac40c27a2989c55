/**
 * `probes:` — checks the agent runs on its own schedule and publishes as
 * retained state (docs/configuration.md § probes). Part of the config schema;
 * schema.ts mounts it.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { formatDuration } from '../core/duration.js';
import { CONTROL_RE } from '../core/names.js';
import { checkCommandProbe, commandProbeFields } from './command-probes.js';
import { httpUrl, positiveDuration } from './fields.js';

export const DEFAULT_PROBE_INTERVAL_MS = 60_000;
export const DEFAULT_PROBE_TIMEOUT_MS = 5_000;
const MIN_INTERVAL_MS = 1_000;

// RFC 1123 host names: labels of letters, digits and inner "-". Starting with a letter or digit, a
// host can never be read as an option by ping (a config value "-f" would flood).
const HOSTNAME_RE =
  /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
// systemd unit names (systemd.unit(5)): letters, digits, ":", "_", ".", "@", "\", "-"; never a leading "-".
const UNIT_RE = /^[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,254}$/;

const target = z.string().refine((s) => isIP(s) !== 0 || HOSTNAME_RE.test(s), {
  error: (issue) =>
    `${JSON.stringify(issue.input)} is not a host name or IP address — give e.g. 192.168.1.10, ::1 or nas.lan (letters, digits, "." and "-", never a leading "-")`,
});

const statusCode = z
  .int('must be a whole number')
  .min(100, 'must be an HTTP status code, 100–599')
  .max(599, 'must be an HTTP status code, 100–599');

/** Searched for anywhere in the body (not anchored): "ok" matches `{"status":"ok"}`. */
const bodyRegex = z
  .string()
  .min(1)
  .check((ctx) => {
    try {
      new RegExp(ctx.value, 'u');
    } catch (err) {
      ctx.issues.push({
        code: 'custom',
        input: ctx.value,
        message: `does not compile as a regular expression (${(err as Error).message}) — fix the syntax; it is searched for anywhere in the body, with the u flag`,
      });
    }
  });

const common = {
  interval: positiveDuration
    .refine((ms) => ms >= MIN_INTERVAL_MS, {
      error: 'must be at least 1s — a probe more often than that loads the host and the broker for nothing',
    })
    .default(DEFAULT_PROBE_INTERVAL_MS),
  timeout: positiveDuration.optional(),
  name: z.string().min(1).max(64).optional(),
};
const http = z.strictObject({
  type: z.literal('http'),
  ...common,
  url: httpUrl,
  // A probe only looks: no method that changes anything.
  method: z.enum(['GET', 'HEAD']).default('GET'),
  status: z
    .union([statusCode, z.array(statusCode).min(1, 'list at least one status code')], {
      error: 'must be an HTTP status code (100–599) or a list of them',
    })
    .optional(),
  body: bodyRegex.optional(),
  insecure: z.boolean().default(false),
});
const tcp = z.strictObject({
  type: z.literal('tcp'),
  ...common,
  host: target,
  port: z.int().min(1).max(65_535),
});
const ping = z.strictObject({
  type: z.literal('ping'),
  ...common,
  host: target,
  count: z.int().min(1).max(10).default(3),
});
const service = z.strictObject({
  type: z.literal('service'),
  ...common,
  unit: z
    .string()
    .regex(
      UNIT_RE,
      'must be a systemd unit name such as nginx or nginx.service (letters, digits, ":", "_", ".", "@", "\\", "-"; never a leading "-")',
    ),
});
const disk = z.strictObject({
  type: z.literal('disk'),
  ...common,
  path: z.string().startsWith('/', 'must be an absolute path such as / or /srv/data'),
  warn_percent: z.number().min(1).max(100).optional(),
});
const processProbe = z.strictObject({
  type: z.literal('process'),
  ...common,
  process: z
    .string()
    .min(1)
    .max(255)
    .refine(
      (s) => !CONTROL_RE.test(s),
      'may not contain control characters — give the process name as `ps -o comm` shows it',
    ),
});
// A program of the owner's, run like an action, its output read as a sensor (command-probes.ts).
const command = z.strictObject({
  type: z.literal('command'),
  ...common,
  ...commandProbeFields,
});
/** One probe. */
export const probeSchema = z
  .discriminatedUnion('type', [http, tcp, ping, service, disk, processProbe, command], {
    error: 'needs type: http, tcp, ping, service, disk, process or command',
  })
  .superRefine((probe, ctx) => {
    if (probe.timeout !== undefined && probe.timeout > probe.interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeout'],
        message: `${formatDuration(probe.timeout)} is longer than interval (${formatDuration(probe.interval)}) — a check must end before the next is due; shorten timeout or lengthen interval`,
      });
    }
    if (probe.type === 'command')
      checkCommandProbe(probe, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
    if (probe.type === 'http' && probe.method === 'HEAD' && probe.body !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['body'],
        message: 'a HEAD response has no body to match — use method: GET, or remove body',
      });
    }
  })
  // The default timeout never exceeds a short interval.
  .transform((probe) => ({
    ...probe,
    timeout: probe.timeout ?? Math.min(DEFAULT_PROBE_TIMEOUT_MS, probe.interval),
  }));

export type ProbeConfig = z.output<typeof probeSchema>;
export type ProbeType = ProbeConfig['type'];
export type ProbeOf<T extends ProbeType> = Extract<ProbeConfig, { type: T }>;
