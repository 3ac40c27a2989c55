/**
 * The value types every part of the config shares — durations, sizes, regexes,
 * argv, URLs, secrets — each with the one error message users see for it.
 */
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { HOST_ID_RE, TOPIC_PREFIX_RE } from '../core/names.js';
import { patternProblem } from '../core/template.js';

/** Milliseconds after parsing; written as seconds or `500ms`/`30s`/`30m`/`2h`. */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx): number => {
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
export const positiveDuration = duration.refine((ms) => ms > 0, {
  message: 'must be more than 0 — give a duration such as 30s',
});

/** A user pattern: RE2 syntax, so it runs in linear time, and contained by its anchors (docs/configuration.md § Patterns). */
export const regexSource = z.string().check((ctx) => {
  const problem = patternProblem(ctx.value);
  if (problem !== undefined) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem });
});

export const hostId = z
  .string()
  .regex(HOST_ID_RE, 'must match ^[a-z0-9][a-z0-9_-]{0,62}$ — use lowercase letters, digits, "_" and "-"');
export const topicPrefix = z
  .string()
  .regex(
    TOPIC_PREFIX_RE,
    'must be topic levels of letters, digits, "_" and "-" joined by "/" — no wildcards, no leading or trailing "/"',
  );

/** Bytes: a number, or a string with K, M or G (powers of 1024). */
export const size = z.union([z.int().positive(), z.string()]).transform((value, ctx): number => {
  if (typeof value === 'number') return value;
  const m = /^(\d+)\s*([KMG])?i?B?$/i.exec(value.trim());
  if (!m) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a size — write bytes (1048576) or a number with K, M or G (512M, 2G)`,
    });
    return z.NEVER;
  }
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? '').toUpperCase() as 'K' | 'M' | 'G'] ?? 1;
  return Number(m[1]) * unit;
});

export const argvSchema = z
  .array(z.string().min(1, 'an argv element may not be empty'))
  .min(1, 'give at least the executable');

/** What a health check or probe may fetch: http or https, with a host. */
export const httpUrl = z.string().refine(
  (s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  },
  {
    error: (issue) =>
      `${JSON.stringify(issue.input)} is not an http:// or https:// URL — give e.g. http://127.0.0.1:8080/healthz`,
  },
);

export const secretFields = {
  password: z.string().min(1).optional(),
  password_file: z.string().min(1).optional(),
};
