/**
 * `probes.<name>` with `type: command` — a program the agent runs on an interval, exactly as it runs
 * an action (argv only, the run user, sudo, limits, timeout, output cap), whose output becomes a
 * Home Assistant sensor (docs/configuration.md § command). Mounted by probes.ts.
 */
import { z } from 'zod';
import { placeholders } from '../core/template.js';
import { limitsSchema } from './actions.js';
import { argvSchema, regexSource } from './fields.js';

/** How the output is read: a number, one of a few words, on/off from the exit code or a match, or a JSON object. */
export const PARSE_KINDS = ['number', 'enum', 'exit_code', 'match', 'json'] as const;
export type ParseKind = (typeof PARSE_KINDS)[number];

/** The kinds that read as on/off: a binary_sensor, and the only ones a switch can take its state from. */
export const BOOLEAN_KINDS: readonly ParseKind[] = ['exit_code', 'match'];

// HA's sensor device classes (components/sensor/const.py SensorDeviceClass) that fit a number read
// from a host; HA checks the unit against the class, so a typo here fails at check-config, not in HA.
const SENSOR_CLASSES = [
  'temperature',
  'humidity',
  'pressure',
  'power',
  'energy',
  'voltage',
  'current',
  'frequency',
  'data_size',
  'data_rate',
  'duration',
  'battery',
  'signal_strength',
  'power_factor',
] as const;
// HA's binary_sensor device classes (components/binary_sensor/__init__.py) a command's verdict fits.
const BINARY_CLASSES = [
  'connectivity',
  'running',
  'problem',
  'power',
  'plug',
  'lock',
  'update',
  'safety',
  'moving',
  'occupancy',
  'opening',
  'presence',
] as const;

/** The keys each parse kind may carry, beyond the ones every command probe has. */
const KIND_KEYS: Readonly<Record<ParseKind, readonly string[]>> = {
  number: ['unit', 'device_class', 'state_class', 'scale', 'precision'],
  enum: ['options'],
  exit_code: ['device_class'],
  match: ['device_class', 'pattern'],
  json: ['unit', 'device_class', 'state_class', 'value_key'],
};

/** The probe's own keys (probes.ts adds type, interval, timeout and name). */
export const commandProbeFields = {
  argv: argvSchema,
  sudo: z.boolean().optional(),
  limits: limitsSchema.optional(),
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and "_"'),
      z.string(),
    )
    .default({}),
  parse: z.enum(PARSE_KINDS, { error: 'parse must be number, enum, exit_code, match or json' }),
  unit: z.string().min(1).max(32).optional(),
  device_class: z
    .string()
    .regex(/^[a-z_]{1,32}$/, 'a Home Assistant device class is lowercase letters and "_"')
    .optional(),
  state_class: z
    .enum(['measurement', 'total', 'total_increasing'], {
      error: 'state_class must be measurement, total or total_increasing',
    })
    .optional(),
  scale: z
    .number()
    .refine((n) => Number.isFinite(n) && n !== 0, 'must be a number other than 0')
    .optional(),
  precision: z.int().min(0).max(10).optional(),
  options: z
    .array(
      z
        .string()
        .min(1)
        .max(255, 'an option is at most 255 characters (Home Assistant shows a longer state as unknown)'),
    )
    .min(1, 'list at least one option')
    .max(64, 'at most 64 options')
    .optional(),
  pattern: regexSource.optional(),
  value_key: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,64}$/, 'a top-level key of the JSON object: letters, digits and "_"')
    .optional(),
};

interface CommandProbeShape {
  argv: string[];
  parse: ParseKind;
  device_class?: string | undefined;
  options?: string[] | undefined;
  pattern?: string | undefined;
  [key: string]: unknown;
}

/** Cross-checks of one command probe: keys that fit its parse kind, a device class HA knows. */
export function checkCommandProbe(
  probe: CommandProbeShape,
  issue: (path: string[], message: string) => void,
): void {
  probe.argv.forEach((element, i) => {
    if (placeholders(element).length > 0)
      issue(
        ['argv', String(i)],
        'a probe takes no params — write the value out (the argv runs exactly as written)',
      );
  });
  const allowed = KIND_KEYS[probe.parse];
  for (const key of new Set(Object.values(KIND_KEYS).flat())) {
    if (probe[key] !== undefined && !allowed.includes(key))
      issue(
        [key],
        `does not apply to parse: ${probe.parse} — remove it, or use a parse kind it fits (${kindsOf(key)})`,
      );
  }
  if (probe.parse === 'enum' && probe.options === undefined)
    issue(['options'], 'parse: enum needs options: the words the command may print, e.g. [idle, busy]');
  if (probe.parse === 'match' && probe.pattern === undefined)
    issue(
      ['pattern'],
      'parse: match needs pattern: a regular expression searched for in the output (on when it is found)',
    );
  const dc = probe.device_class;
  if (dc === undefined || !allowed.includes('device_class')) return;
  const known: readonly string[] = BOOLEAN_KINDS.includes(probe.parse) ? BINARY_CLASSES : SENSOR_CLASSES;
  if (!known.includes(dc))
    issue(['device_class'], `is not one Home Assistant knows here — use one of: ${known.join(', ')}`);
}

function kindsOf(key: string): string {
  return PARSE_KINDS.filter((k) => KIND_KEYS[k].includes(key)).join(' or ');
}
