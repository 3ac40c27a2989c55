/**
 * The config file's single source of truth: validation, defaults and the
 * TypeScript types all come from here (docs/configuration.md).
 */
import { z } from 'zod';
import { formatDuration } from '../core/duration.js';
import { ACTION_NAME_RE } from '../core/names.js';
import { actionSchema, limitsSchema } from './actions.js';
import { brokerSchema } from './broker.js';
import {
  duration,
  hostId,
  positiveDuration,
  regexSource,
  secretFields,
  size,
  topicPrefix,
} from './fields.js';
import { probeSchema } from './probes.js';
import { checkSwitches, switchesSchema } from './switches.js';
import { checkEntityIds } from './entity-ids.js';
import { updatesSchema } from './updates.js';

export { actionSchema, healthCheckSchema, limitsSchema } from './actions.js';
export { paramSchema } from './action-params.js';
export type { ActionConfig, HealthCheckConfig } from './actions.js';
export type { ParamSpec } from './action-params.js';

const mqttUrl = z
  .string()
  .regex(/^(mqtts?|wss?|tcp|tls):\/\/[^\s]+$/, 'must be a URL like mqtt://host:1883 or mqtts://host:8883');
// One broker, or several tried in order: the agent fails over between them (docs/brokers.md § Failover).
const mqttUrls = z.union(
  [
    mqttUrl,
    z
      .array(mqttUrl)
      .min(1, 'list at least one broker URL (or give one URL as a plain string)')
      .refine(
        (urls) => new Set(urls).size === urls.length,
        'lists the same URL twice — give each broker once',
      ),
  ],
  { error: 'give one URL (mqtt://host:1883) or a list of URLs, tried in order' },
);

export const mqttSchema = z
  .strictObject({
    url: mqttUrls.default('mqtt://127.0.0.1:1883'),
    username: z.string().min(1).optional(),
    ...secretFields,
    prefix: topicPrefix.default('homelab'),
    keepalive: duration.default(30_000),
    client_id: z.string().min(1).max(128).optional(),
    ca_file: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    insecure: z.boolean().default(false),
  })
  .superRefine((mqtt, ctx) => {
    if (mqtt.password !== undefined && mqtt.password_file !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['password_file'],
        message: 'give password or password_file, not both',
      });
    }
    if (mqtt.keepalive < 1000 || mqtt.keepalive > 65_535_000) {
      ctx.addIssue({
        code: 'custom',
        path: ['keepalive'],
        message: `${formatDuration(mqtt.keepalive)} is out of range — use 1s to 65535s`,
      });
    }
    if ((mqtt.cert_file === undefined) !== (mqtt.key_file === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['cert_file'],
        message: 'a client certificate needs both cert_file and key_file',
      });
    }
  });

export const configSchema = z
  .strictObject({
    host: hostId.optional(),
    state_dir: z.string().min(1).optional(),
    mqtt: mqttSchema.prefault({}),
    heartbeat: z.strictObject({ interval: positiveDuration.default(30_000) }).prefault({}),
    discovery: z
      .strictObject({
        enabled: z.boolean().default(true),
        prefix: topicPrefix.default('homeassistant'),
      })
      .prefault({}),
    execution: z
      .strictObject({
        enabled: z.boolean().default(false),
        sudo: z.boolean().default(false),
        timeout: positiveDuration.default(30_000),
        max_output: z.int().min(0).max(10_000_000).default(10_000),
        concurrency: z.int().min(1).max(64).default(2),
        queue: z.int().min(0).max(100_000).default(32),
        shutdown_grace: duration.default(10_000),
        // A request with ts but no ttl is valid this long after ts (docs/mqtt-api.md § Late requests).
        max_age: positiveDuration.default(300_000),
        // Commands without sudo run as this user, never as the agent (docs/security.md § Commands run as
        // another user). Unset: homelab-cmd-run when it exists, with a warning when not; false: as the agent.
        run_as: z
          .union([
            z.literal(false),
            z
              .string()
              .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user name (e.g. homelab-cmd-run), or false'),
          ])
          .optional(),
        // The fixed PATH every child gets; nothing else of the agent's environment reaches it.
        path: z
          .string()
          .regex(
            /^\/[^:]*(?::\/[^:]*)*$/,
            'must be absolute directories joined by ":" — a relative PATH entry would depend on the working directory',
          )
          .default('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'),
      })
      .prefault({}),
    security: z
      .strictObject({
        require_signature: z
          .enum(['none', 'privileged', 'all'], {
            error: 'require_signature must be none, privileged (sudo actions) or all',
          })
          .default('none'),
        key_file: z.string().min(1).optional(),
        // How far a signed request's ts may be from the agent's clock, either way.
        window: positiveDuration.default(300_000),
        deny: z.array(regexSource).default([]),
        limits: limitsSchema.optional(),
        audit: z
          .strictObject({
            enabled: z.boolean().default(true),
            max_size: size.default(1_048_576),
            keep: z.int().min(1).max(100).default(3),
          })
          .prefault({}),
      })
      .prefault({})
      .superRefine((sec, ctx) => {
        if (sec.require_signature !== 'none' && sec.key_file === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['key_file'],
            message: `require_signature: ${sec.require_signature} needs key_file — the file with the shared HMAC key`,
          });
        }
      }),
    // Named groups this host belongs to, for `send --group` (docs/fleet.md § Groups); a stagger group counts too.
    groups: z
      .array(
        z
          .string()
          .regex(ACTION_NAME_RE, 'group names must match ^[a-z0-9][a-z0-9_]{0,62}$ (like action names)'),
      )
      .max(64, 'at most 64 groups — a host in more is better described by fewer, wider groups')
      .refine((g) => new Set(g).size === g.length, 'a group is listed twice — list each group once')
      .default([]),
    actions: z
      .record(
        z.string().regex(ACTION_NAME_RE, 'action names must match ^[a-z0-9][a-z0-9_]{0,62}$'),
        actionSchema,
      )
      .default({}),
    probes: z
      .record(
        z.string().regex(ACTION_NAME_RE, 'probe names must match ^[a-z0-9][a-z0-9_]{0,62}$'),
        probeSchema,
      )
      .default({}),
    // HA switches: an on action, an off action and a command probe for the state (docs/configuration.md § switches).
    switches: switchesSchema,
    // OS package updates and the reboot-required flag in HA (docs/updates.md).
    updates: updatesSchema,
    broker: brokerSchema.prefault({}),
  })
  .superRefine(
    (config, ctx) => {
      // An agent may write `<discovery>/+/<its host>/#`: were that inside `<prefix>/`, a host named
      // "cmd" or "status" could write other hosts' command or status topics.
      const p = config.mqtt.prefix;
      const d = config.discovery.prefix;
      if (p === d || p.startsWith(`${d}/`) || d.startsWith(`${p}/`)) {
        ctx.addIssue({
          code: 'custom',
          path: ['discovery', 'prefix'],
          message: `"${d}" must not overlap mqtt.prefix "${p}" — the broker ACL needs them apart; use e.g. homeassistant`,
        });
      }
    },
    {
      when: (payload) => {
        const v = payload.value as
          { mqtt?: { prefix?: unknown }; discovery?: { prefix?: unknown } } | undefined;
        return typeof v?.mqtt?.prefix === 'string' && typeof v.discovery?.prefix === 'string';
      },
    },
  )
  .superRefine((config, ctx) => {
    const install = config.updates.install_action;
    if (install !== undefined && config.actions[install] === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['updates', 'install_action'],
        message: `names no action — add an action ${install} under actions: (e.g. argv: [apt-get, -y, upgrade] with sudo: true), or fix the name`,
      });
    }
  })
  .superRefine((config, ctx) =>
    checkSwitches(config, (path, message) => ctx.addIssue({ code: 'custom', path, message })),
  )
  .superRefine((config, ctx) =>
    checkEntityIds(config, (path, message) => ctx.addIssue({ code: 'custom', path, message })),
  );

export type RawConfig = z.output<typeof configSchema>;
export type MqttConfig = z.output<typeof mqttSchema>;
