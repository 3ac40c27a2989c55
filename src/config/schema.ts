/**
 * The config file's single source of truth: validation, defaults and the
 * TypeScript types all come from here (CONTRACT.md § Config file).
 */
import { z } from 'zod';
import { formatDuration, parseDuration } from '../core/duration.js';
import { ACTION_NAME_RE, HOST_ID_RE, PARAM_NAME_RE, TOPIC_PREFIX_RE } from '../core/names.js';
import { anchored, namedGroups, placeholders } from '../core/template.js';

/** Milliseconds after parsing; written as seconds or `500ms`/`30s`/`30m`/`2h`. */
const duration = z.union([z.number(), z.string()]).transform((value, ctx): number => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${String(value)}" is not a duration — write seconds (30) or a number with ms, s, m or h (500ms, 30s, 30m, 2h)`,
    });
    return z.NEVER;
  }
  return ms;
});

/** Timeouts and intervals: 0 would kill every command at once, or publish heartbeats in a tight loop. */
const positiveDuration = duration.refine((ms) => ms > 0, { message: 'must be more than 0 — give a duration such as 30s' });

const regexSource = z.string().check((ctx) => {
  try {
    anchored(ctx.value);
  } catch (err) {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: `does not compile as a regular expression (${(err as Error).message}) — fix the syntax; it is matched whole, with the u flag`,
    });
  }
});

const hostId = z
  .string()
  .regex(HOST_ID_RE, 'must match ^[a-z0-9][a-z0-9_-]{0,62}$ — use lowercase letters, digits, "_" and "-"');
const topicPrefix = z
  .string()
  .regex(TOPIC_PREFIX_RE, 'must be topic levels of letters, digits, "_" and "-" joined by "/" — no wildcards, no leading or trailing "/"');

const stringParam = z.strictObject({
  type: z.literal('string'),
  pattern: regexSource,
  max_length: z.int().min(1).max(4096).default(255),
  default: z.string().optional(),
  description: z.string().optional(),
});
const integerParam = z.strictObject({
  type: z.literal('integer'),
  min: z.int().optional(),
  max: z.int().optional(),
  default: z.int().optional(),
  description: z.string().optional(),
});
const enumParam = z.strictObject({
  type: z.literal('enum'),
  values: z.array(z.string().min(1)).min(1, 'list at least one value'),
  default: z.string().optional(),
  description: z.string().optional(),
});
export const paramSchema = z.discriminatedUnion('type', [stringParam, integerParam, enumParam], {
  error: 'needs type: string (with pattern), integer (min, max) or enum (values)',
});

/** Bytes: a number, or a string with K, M or G (powers of 1024). */
const size = z.union([z.int().positive(), z.string()]).transform((value, ctx): number => {
  if (typeof value === 'number') return value;
  const m = /^(\d+)\s*([KMG])?i?B?$/i.exec(value.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size — write bytes (1048576) or a number with K, M or G (512M, 2G)` });
    return z.NEVER;
  }
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? '').toUpperCase() as 'K' | 'M' | 'G'] ?? 1;
  return Number(m[1]) * unit;
});

/** Resource limits, applied with util-linux prlimit (docs/security.md). */
export const limitsSchema = z.strictObject({
  memory: size.optional(),
  cpu: positiveDuration.optional(),
  processes: z.int().min(1).max(1_000_000).optional(),
  file_size: size.optional(),
  open_files: z.int().min(3).max(1_048_576).optional(),
});

const argvSchema = z.array(z.string().min(1, 'an argv element may not be empty')).min(1, 'give at least the executable');

export const actionSchema = z
  .strictObject({
    argv: argvSchema.optional(),
    steps: z.array(argvSchema).min(1, 'give at least one step').optional(),
    params: z.record(z.string().regex(PARAM_NAME_RE, 'param names must match ^[a-z][a-z0-9_]{0,62}$'), paramSchema).default({}),
    pattern: regexSource.optional(),
    sudo: z.boolean().optional(),
    timeout: positiveDuration.optional(),
    stagger: z
      .strictObject({
        group: z.string().regex(ACTION_NAME_RE, 'must match ^[a-z0-9][a-z0-9_]{0,62}$'),
        interval: positiveDuration,
        // How long a claim waits for competing claims before the tie-break (docs/stagger.md).
        settle: positiveDuration.default(2000),
        require_peers_online: z.boolean().default(false),
        max_wait: positiveDuration.optional(),
        health: z
          .strictObject({
            argv: argvSchema,
            timeout: positiveDuration.default(30_000),
            // Tries, spaced by `delay`: a restarted service needs a moment before it answers.
            retries: z.int().min(1).max(100).default(3),
            delay: duration.default(2000),
          })
          .optional(),
      })
      .optional(),
    button: z.boolean().default(false),
    name: z.string().min(1).max(64).optional(),
    device_class: z.enum(['restart', 'identify', 'update']).optional(),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and "_"'), z.string())
      .default({}),
    limits: limitsSchema.optional(),
  })
  .superRefine((action, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if ((action.argv === undefined) === (action.steps === undefined)) {
      issue([], 'give exactly one of argv (one command) or steps (commands run in order)');
    }
    const commands: [(string | number)[], string[]][] = action.argv
      ? [[['argv'], action.argv]]
      : (action.steps ?? []).map((s, i) => [['steps', i], s]);
    const used = new Set<string>();
    for (const [path, argv] of commands) {
      argv.forEach((element, i) => {
        for (const name of placeholders(element)) {
          used.add(name);
          if (i === 0) issue([...path, 0], `the executable may not come from a param ({${name}}) — name a fixed program`);
          if (!(name in action.params)) issue([...path, i], `{${name}} is not a declared param — add it under params or remove it`);
        }
      });
    }
    action.stagger?.health?.argv.forEach((element, i) => {
      if (placeholders(element).length > 0) issue(['stagger', 'health', 'argv', i], 'a health check takes no params — write the command out in full');
    });
    for (const [name, param] of Object.entries(action.params)) {
      if (!used.has(name)) issue(['params', name], `param "${name}" is declared but no argv element uses {${name}} — use it or remove it`);
      checkDefault(param, (m) => issue(['params', name, 'default'], m));
      if (param.type === 'integer' && param.min !== undefined && param.max !== undefined && param.min > param.max) {
        issue(['params', name], `min (${param.min}) is greater than max (${param.max})`);
      }
    }
    if (action.button) {
      // A press carries no params. Enum and integer params are shown in HA as select/number entities
      // whose current values the press uses; a string param can only fall back to its default.
      const missing = Object.entries(action.params).filter(([, p]) => p.default === undefined && p.type === 'string');
      for (const [name] of missing) {
        issue(['button'], `a button press sends no params, and param "${name}" has no default — give it a default, or set button: false`);
      }
    }
    if (action.pattern !== undefined) {
      const groups = namedGroups(action.pattern);
      const params = Object.keys(action.params);
      for (const g of groups.filter((g) => !params.includes(g))) {
        issue(['pattern'], `named group (?<${g}>…) is not a declared param — rename it to one of: ${params.join(', ') || '(no params)'}`);
      }
      for (const p of params.filter((p) => !groups.includes(p))) {
        issue(['pattern'], `has no named group for param "${p}" — add (?<${p}>…) so a raw command can set it`);
      }
    }
  }, { when: (payload) => structurallySound(payload.value) });

/**
 * Cross-checks run even when a field elsewhere in the action failed (check-config reports every
 * problem at once), as long as the shapes they read are intact.
 */
function structurallySound(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const a = value as Record<string, unknown>;
  const isArgv = (x: unknown) => Array.isArray(x) && x.every((e) => typeof e === 'string');
  if (a.argv !== undefined && !isArgv(a.argv)) return false;
  if (a.steps !== undefined && !(Array.isArray(a.steps) && a.steps.every(isArgv))) return false;
  if (typeof a.params !== 'object' || a.params === null) return false;
  const types = ['string', 'integer', 'enum'];
  return Object.values(a.params).every((p) => typeof p === 'object' && p !== null && types.includes((p as { type?: string }).type ?? ''))
    && (a.pattern === undefined || typeof a.pattern === 'string');
}

function checkDefault(param: z.infer<typeof paramSchema>, report: (message: string) => void): void {
  if (param.default === undefined) return;
  if (param.type === 'string') {
    if (!safeTest(param.pattern, param.default)) report(`"${param.default}" does not match the param's pattern`);
    else if (param.default.startsWith('-')) report('a default may not begin with "-" (it would read as an option)');
  } else if (param.type === 'integer') {
    if ((param.min !== undefined && param.default < param.min) || (param.max !== undefined && param.default > param.max)) {
      report(`${param.default} is outside min/max`);
    }
  } else if (!param.values.includes(param.default)) {
    report(`"${param.default}" is not one of values (${param.values.join(', ')})`);
  }
}

function safeTest(pattern: string, value: string): boolean {
  try {
    return anchored(pattern).test(value);
  } catch {
    return true; // the pattern's own error is reported where it is declared
  }
}

const secretFields = {
  password: z.string().min(1).optional(),
  password_file: z.string().min(1).optional(),
};

const userSchema = z
  .strictObject({
    username: z.string().min(1),
    ...secretFields,
    role: z.enum(['agent', 'controller'], { error: 'role must be agent or controller' }),
    host: hostId.optional(),
  })
  .superRefine((user, ctx) => {
    if ((user.password === undefined) === (user.password_file === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of password or password_file' });
    }
    if (user.role === 'agent' && user.host === undefined) {
      ctx.addIssue({ code: 'custom', path: ['host'], message: 'an agent user is bound to one host — add host: <its host id>' });
    }
  });

const mqttUrl = z
  .string()
  .regex(/^(mqtts?|wss?|tcp|tls):\/\/[^\s]+$/, 'must be a URL like mqtt://host:1883 or mqtts://host:8883');

export const mqttSchema = z
  .strictObject({
    url: mqttUrl.default('mqtt://127.0.0.1:1883'),
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
      ctx.addIssue({ code: 'custom', path: ['password_file'], message: 'give password or password_file, not both' });
    }
    if (mqtt.keepalive < 1000 || mqtt.keepalive > 65_535_000) {
      ctx.addIssue({ code: 'custom', path: ['keepalive'], message: `${formatDuration(mqtt.keepalive)} is out of range — use 1s to 65535s` });
    }
    if ((mqtt.cert_file === undefined) !== (mqtt.key_file === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['cert_file'], message: 'a client certificate needs both cert_file and key_file' });
    }
  });

export const configSchema = z.strictObject({
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
      // The fixed PATH every child gets; nothing else of the agent's environment reaches it.
      path: z
        .string()
        .regex(/^\/[^:]*(?::\/[^:]*)*$/, 'must be absolute directories joined by ":" — a relative PATH entry would depend on the working directory')
        .default('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'),
    })
    .prefault({}),
  security: z
    .strictObject({
      require_signature: z.enum(['none', 'privileged', 'all'], { error: 'require_signature must be none, privileged (sudo actions) or all' }).default('none'),
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
        ctx.addIssue({ code: 'custom', path: ['key_file'], message: `require_signature: ${sec.require_signature} needs key_file — the file with the shared HMAC key` });
      }
    }),
  actions: z.record(z.string().regex(ACTION_NAME_RE, 'action names must match ^[a-z0-9][a-z0-9_]{0,62}$'), actionSchema).default({}),
  broker: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.int().min(0).max(65_535).default(1883),
      users: z.array(userSchema).default([]),
    })
    .prefault({}),
}).superRefine((config, ctx) => {
  // An agent may write `<discovery>/+/<its host>/#`: were that inside `<prefix>/`, a host named
  // "cmd" or "status" could write other hosts' command or status topics.
  const p = config.mqtt.prefix;
  const d = config.discovery.prefix;
  if (p === d || p.startsWith(`${d}/`) || d.startsWith(`${p}/`)) {
    ctx.addIssue({ code: 'custom', path: ['discovery', 'prefix'], message: `"${d}" must not overlap mqtt.prefix "${p}" — the broker ACL needs them apart; use e.g. homeassistant` });
  }
}, { when: (payload) => {
  const v = payload.value as { mqtt?: { prefix?: unknown }; discovery?: { prefix?: unknown } } | undefined;
  return typeof v?.mqtt?.prefix === 'string' && typeof v.discovery?.prefix === 'string';
} });

export type RawConfig = z.output<typeof configSchema>;
export type ActionConfig = z.output<typeof actionSchema>;
export type ParamSpec = z.output<typeof paramSchema>;
export type BrokerUser = z.output<typeof userSchema>;
export type MqttConfig = z.output<typeof mqttSchema>;
