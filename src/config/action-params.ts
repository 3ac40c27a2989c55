/**
 * `actions.<name>.params` — what a param may be (string with a pattern, integer, enum, confined path)
 * and whether its default fits (docs/configuration.md § actions). Its own module because a param's
 * rules are the same wherever it is used; actions.ts checks how an action uses its params.
 */
import { z } from 'zod';
import { lexicalPath } from '../core/paths.js';
import { matchesWhole, patternProblem } from '../core/template.js';
import { regexSource } from './fields.js';

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
  // HA refuses a state over 255 characters: a select on a longer value would show `unknown` (docs/home-assistant.md).
  values: z
    .array(
      z
        .string()
        .min(1)
        .max(
          255,
          'an enum value is at most 255 characters (Home Assistant shows a longer one as unknown): shorten it',
        ),
    )
    .min(1, 'list at least one value'),
  default: z.string().optional(),
  description: z.string().optional(),
});
const rootDir = z
  .string()
  .regex(/^\//, 'must be an absolute directory (starting with "/")')
  .refine((d) => d.replace(/\/+$/, '') !== '', {
    message: '"/" confines nothing — name the directory the values must stay in, e.g. /var/log/myapp',
  });
/** A file or directory name confined to `roots` (core/paths.ts checks the text, exec/confine.ts the real path). */
const pathParam = z.strictObject({
  type: z.literal('path'),
  roots: z.array(rootDir).min(1, 'list at least one root directory, e.g. roots: [/var/log/myapp]'),
  must_exist: z.boolean().default(true),
  default: z.string().optional(),
  description: z.string().optional(),
});
export const paramSchema = z.discriminatedUnion('type', [stringParam, integerParam, enumParam, pathParam], {
  error: 'needs type: string (with pattern), integer (min, max), enum (values) or path (roots)',
});

/** Reports a default that does not fit its param (also on an action whose other fields failed). */
export function checkDefault(param: z.infer<typeof paramSchema>, report: (message: string) => void): void {
  if (param.default === undefined) return;
  // These cross-checks also run on an action whose fields failed their own checks (check-config reports
  // every problem at once): a default of the wrong type is reported where it is declared, not here.
  if (param.type === 'string') {
    if (typeof param.default !== 'string' || typeof param.pattern !== 'string') return;
    if (!safeTest(param.pattern, param.default))
      report(`"${param.default}" does not match the param's pattern`);
    else if (param.default.startsWith('-'))
      report('a default may not begin with "-" (it would read as an option)');
  } else if (param.type === 'integer') {
    if (typeof param.default !== 'number') return;
    if (
      (param.min !== undefined && param.default < param.min) ||
      (param.max !== undefined && param.default > param.max)
    ) {
      report(`${param.default} is outside min/max`);
    }
  } else if (param.type === 'path') {
    // A default or roots of the wrong type is reported where it is declared.
    if (
      typeof param.default !== 'string' ||
      !Array.isArray(param.roots) ||
      !param.roots.every((r) => typeof r === 'string')
    )
      return;
    const checked = lexicalPath(param.default, param.roots);
    if ('error' in checked) report(checked.error);
  } else if (!Array.isArray(param.values) || typeof param.default !== 'string') {
    return;
  } else if (!param.values.includes(param.default)) {
    report(`"${param.default}" is not one of values (${param.values.join(', ')})`);
  }
}

function safeTest(pattern: string, value: string): boolean {
  // An unusable pattern's own error is reported where it is declared.
  return patternProblem(pattern) !== undefined || matchesWhole(pattern, value);
}

export type ParamSpec = z.output<typeof paramSchema>;
