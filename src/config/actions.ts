/**
 * `actions:` — what may run, with which params, checks and rollback
 * (docs/configuration.md § actions). Mounted by schema.ts.
 */
import { z } from 'zod';
import { ACTION_NAME_RE, PARAM_NAME_RE } from '../core/names.js';
import { namedGroups, placeholders } from '../core/template.js';
import { checkDefault, paramSchema } from './action-params.js';
import { fixedParts, shellLineProblems } from './shell-line.js';
import { argvSchema, duration, httpUrl, positiveDuration, regexSource, size } from './fields.js';
import { rebootSchema } from './reboots.js';

/** Resource limits, applied with util-linux prlimit (docs/security.md). */
export const limitsSchema = z.strictObject({
  memory: size.optional(),
  cpu: positiveDuration.optional(),
  processes: z.int().min(1).max(1_000_000).optional(),
  file_size: size.optional(),
  open_files: z.int().min(3).max(1_048_576).optional(),
});

/**
 * One health check for both `actions.<name>.health` (a deployment's) and `stagger.health` (a group's):
 * a command that exits 0, or a URL that answers the expected status. Never sudo, never params.
 */
export const healthCheckSchema = z
  .strictObject({
    argv: argvSchema.optional(),
    http: z
      .strictObject({
        url: httpUrl,
        status: z.int().min(100).max(599).default(200),
      })
      .optional(),
    timeout: positiveDuration.default(30_000),
    // Tries, spaced by `delay`: a restarted service needs a moment before it answers.
    retries: z.int().min(1).max(100).default(3),
    delay: duration.default(2000),
  })
  .superRefine((health, ctx) => {
    if ((health.argv === undefined) === (health.http === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'give exactly one of argv (a command; exit 0 passes) or http (url, and the status it must answer)',
      });
    }
  });

export const actionSchema = z
  .strictObject({
    argv: argvSchema.optional(),
    steps: z.array(argvSchema).min(1, 'give at least one step').optional(),
    params: z
      .record(z.string().regex(PARAM_NAME_RE, 'param names must match ^[a-z][a-z0-9_]{0,62}$'), paramSchema)
      .default({}),
    pattern: regexSource.optional(),
    sudo: z.boolean().optional(),
    timeout: positiveDuration.optional(),
    // execution.max_age for this action (docs/mqtt-api.md § Late requests).
    max_age: positiveDuration.optional(),
    stagger: z
      .strictObject({
        group: z.string().regex(ACTION_NAME_RE, 'must match ^[a-z0-9][a-z0-9_]{0,62}$'),
        interval: positiveDuration,
        // How long a claim waits for competing claims before the tie-break (docs/stagger.md).
        settle: positiveDuration.default(2000),
        require_peers_online: z.boolean().default(false),
        max_wait: positiveDuration.optional(),
        // How long a held group waits for a holder that is not online (docs/stagger.md § Failure cases).
        max_hold: positiveDuration.default(3_600_000),
        health: healthCheckSchema.optional(),
      })
      .optional(),
    // A deployment (docs/configuration.md § Deployments): steps, then this check; a failure of either runs `rollback`.
    health: healthCheckSchema.optional(),
    rollback: z.array(argvSchema).min(1, 'give at least one rollback step').optional(),
    retry: z
      .strictObject({
        attempts: z.int().min(2, 'attempts counts the first run too: at least 2').max(10),
        backoff: positiveDuration.default(5000),
      })
      .optional(),
    idempotent: z.boolean().default(false),
    // The action reboots the host: its result waits for the boot (docs/configuration.md § Reboots).
    reboot: rebootSchema,
    button: z.boolean().default(false),
    name: z.string().min(1).max(64).optional(),
    device_class: z.enum(['restart', 'identify', 'update']).optional(),
    env: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and "_"'),
        z.string(),
      )
      .default({}),
    limits: limitsSchema.optional(),
  })
  .superRefine(
    (action, ctx) => {
      const issue = (path: (string | number)[], message: string) =>
        ctx.addIssue({ code: 'custom', path, message });
      const isMapping = (x: unknown) => typeof x === 'object' && x !== null;
      if ((action.argv === undefined) === (action.steps === undefined)) {
        issue([], 'give exactly one of argv (one command) or steps (commands run in order)');
      }
      const commands: [(string | number)[], string[]][] = action.argv
        ? [[['argv'], action.argv]]
        : (action.steps ?? []).map((s, i) => [['steps', i], s]);
      // Rollback steps may use the action's params, under the same rules as its steps.
      (action.rollback ?? []).forEach((s, i) => commands.push([['rollback', i], s]));
      const used = new Set<string>();
      for (const [path, argv] of commands) {
        argv.forEach((element, i) => {
          for (const name of placeholders(element)) {
            used.add(name);
            if (i === 0)
              issue(
                [...path, 0],
                `the executable may not come from a param ({${name}}) — name a fixed program`,
              );
            // Own keys only: `{constructor}` must be declared like any other name.
            if (!Object.hasOwn(action.params, name))
              issue([...path, i], `{${name}} is not a declared param — add it under params or remove it`);
          }
        });
      }
      // A shell line in one element can never run as meant: the clear cases are errors (shell-line.ts).
      for (const [path, argv] of commands)
        for (const p of shellLineProblems(fixedParts(argv)))
          if (p.severity === 'error') issue([...path, p.index], p.message);
      for (const [path, health] of [
        [['stagger', 'health'], action.stagger?.health],
        [['health'], action.health],
      ] as const) {
        // Its shape may have failed already (reported there): check only a list of strings.
        if (!Array.isArray(health?.argv)) continue;
        health.argv.forEach((element, i) => {
          if (typeof element === 'string' && placeholders(element).length > 0)
            issue([...path, 'argv', i], 'a health check takes no params — write the command out in full');
        });
      }
      if (isMapping(action.health) && isMapping(action.stagger?.health)) {
        issue(
          ['stagger', 'health'],
          'give the health check once: with actions.<name>.health set, that check also gates the stagger group — remove stagger.health',
        );
      }
      if (isMapping(action.retry) && !action.idempotent) {
        issue(
          ['retry'],
          'retry runs the action again after a failure, which is safe only when running it twice does no harm — if so, confirm with idempotent: true; otherwise remove retry',
        );
      }
      if (isMapping(action.retry) && action.rollback) {
        issue(
          ['retry'],
          'retry and rollback do not mix: a rolled-back deployment failed for a reason a second try will meet again, and one whose rollback failed must be looked at, not redeployed — remove one of them',
        );
      }
      for (const [name, param] of Object.entries(action.params)) {
        if (!used.has(name))
          issue(
            ['params', name],
            `param "${name}" is declared but no argv element uses {${name}} — use it or remove it`,
          );
        checkDefault(param, (m) => issue(['params', name, 'default'], m));
        if (
          param.type === 'integer' &&
          param.min !== undefined &&
          param.max !== undefined &&
          param.min > param.max
        ) {
          issue(['params', name], `min (${param.min}) is greater than max (${param.max})`);
        }
      }
      if (action.reboot) {
        for (const key of ['rollback', 'retry'] as const)
          if (action[key] !== undefined)
            issue(
              [key],
              `a reboot cannot be ${key === 'retry' ? 'run again' : 'rolled back'}: the host is gone when the command has run — remove ${key} (a reboot is never re-run; docs/configuration.md § Reboots)`,
            );
      }
      if (action.button || action.reboot) {
        // A press carries no params. Enum and integer params are shown in HA as select/number entities
        // whose current values the press uses; a string param can only fall back to its default.
        const missing = Object.entries(action.params).filter(
          ([, p]) => p.default === undefined && (p.type === 'string' || p.type === 'path'),
        );
        for (const [name] of missing) {
          issue(
            [action.button ? 'button' : 'reboot'],
            action.button
              ? `a button press sends no params, and param "${name}" has no default — give it a default, or set button: false`
              : `a reboot action gets a Reboot button in Home Assistant, which sends no params, and param "${name}" has no default — give it a default`,
          );
        }
      }
      if (action.pattern !== undefined) {
        const groups = namedGroups(action.pattern);
        const params = Object.keys(action.params);
        for (const g of groups.filter((g) => !params.includes(g))) {
          issue(
            ['pattern'],
            `named group (?<${g}>…) is not a declared param — rename it to one of: ${params.join(', ') || '(no params)'}`,
          );
        }
        for (const p of params.filter((p) => !groups.includes(p))) {
          issue(
            ['pattern'],
            `has no named group for param "${p}" — add (?<${p}>…) so a raw command can set it`,
          );
        }
      }
    },
    { when: (payload) => structurallySound(payload.value) },
  );

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
  if (a.rollback !== undefined && !(Array.isArray(a.rollback) && a.rollback.every(isArgv))) return false;
  if (typeof a.params !== 'object' || a.params === null) return false;
  const types = ['string', 'integer', 'enum', 'path'];
  return (
    Object.values(a.params).every(
      (p) => typeof p === 'object' && p !== null && types.includes((p as { type?: string }).type ?? ''),
    ) &&
    (a.pattern === undefined || typeof a.pattern === 'string')
  );
}

export type ActionConfig = z.output<typeof actionSchema>;
export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
