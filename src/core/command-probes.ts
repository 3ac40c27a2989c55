/**
 * A command probe's run → its reading, as pure data (docs/configuration.md § command): the output
 * read as a number, one of the options, on/off or a JSON object — or an error sentence, so that HA
 * shows `unknown` with the reason as an attribute rather than a wrong value.
 */
import type { ProbeOf } from '../config/probes.js';
import { formatDuration } from './duration.js';
import { parseBoundedJson } from './json.js';
import type { ProbeReading } from './probes.js';
import { searches } from './template.js';

/** What a run of the probe's argv gave: the fields of the exec outcome this needs. */
export interface CommandRun {
  status: 'succeeded' | 'failed' | 'timed_out' | 'interrupted' | 'cancelled';
  exit_code: number;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  error_code?: string | undefined;
  error?: string | undefined;
}

// HA keeps a state to 255 characters (docs/home-assistant.md § Limits).
const MAX_STATE = 255;
/** A JSON probe's attributes, serialized: far under the recorder's 16 KB, with room for `error`. */
export const MAX_ATTRIBUTE_BYTES = 4096;
// HA drops an attribute named state (docs/home-assistant.md § Limits).
const DROPPED_ATTRIBUTES = new Set(['state']);
const NUMBER_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function commandReading(probe: ProbeOf<'command'>, run: CommandRun): ProbeReading {
  const unit = probe.unit ?? null;
  const exitCode = run.status === 'succeeded' || run.error_code === 'exit_nonzero' ? run.exit_code : null;
  const fail = (error: string): ProbeReading => ({
    ok: false,
    value: null,
    error,
    unit,
    extra: { exit_code: exitCode },
  });
  const ran = run.status === 'succeeded' || run.error_code === 'exit_nonzero';
  if (!ran) {
    if (run.status === 'timed_out')
      return fail(
        `${probe.argv[0]} did not finish within ${formatDuration(probe.timeout)} and was killed — raise the probe's timeout, or make the command quicker`,
      );
    return fail(run.error ?? `${probe.argv[0]} could not be run (${run.status})`);
  }
  if (probe.parse === 'exit_code')
    return { ok: true, value: run.exit_code === 0, error: null, unit, extra: { exit_code: exitCode } };
  if (run.exit_code !== 0) {
    const said = firstLine(run.stderr) || firstLine(run.stdout);
    return fail(`${probe.argv[0]} exited with code ${run.exit_code}${said ? `: ${said}` : ''}`);
  }
  const ok = (value: ProbeReading['value'], attributes?: Record<string, unknown>): ProbeReading => ({
    ok: true,
    value,
    error: null,
    unit,
    extra: attributes ? { exit_code: exitCode, attributes } : { exit_code: exitCode },
  });
  switch (probe.parse) {
    case 'match':
      return ok(searches(probe.pattern ?? '', run.stdout));
    case 'number': {
      const text = firstLine(run.stdout);
      const n = NUMBER_RE.test(text) ? Number(text) : NaN;
      if (!Number.isFinite(n))
        return fail(`the output ${quote(text)} is not a number — make the command print only the number`);
      return ok(scaled(n, probe.scale, probe.precision));
    }
    case 'enum': {
      const text = firstLine(run.stdout);
      const options = probe.options ?? [];
      if (!options.includes(text))
        return fail(
          `the output ${quote(text)} is not one of options (${options.join(', ')}) — add it to options, or fix the command`,
        );
      return ok(text);
    }
    case 'json':
      return jsonReading(probe, run, ok, fail);
  }
}

function jsonReading(
  probe: ProbeOf<'command'>,
  run: CommandRun,
  ok: (value: ProbeReading['value'], attributes?: Record<string, unknown>) => ProbeReading,
  fail: (error: string) => ProbeReading,
): ProbeReading {
  if (run.stdout_truncated)
    return fail('the output was cut at execution.max_output, so it is not whole JSON — print less');
  const parsed = parseBoundedJson(run.stdout);
  if (!parsed.ok || typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value))
    return fail('the output is not a JSON object — print one object, e.g. {"value": 42, "mode": "eco"}');
  const obj = parsed.value as Record<string, unknown>;
  const key = probe.value_key ?? 'value';
  const value = Object.hasOwn(obj, key) ? obj[key] : undefined;
  if (value !== null && !['number', 'string', 'boolean'].includes(typeof value))
    return fail(`the JSON object has no number, string or boolean "${key}" — add it, or set value_key`);
  if (typeof value === 'string' && value.length > MAX_STATE)
    return fail(
      `"${key}" is ${value.length} characters; Home Assistant keeps a state of at most ${MAX_STATE} — print a shorter value and put the rest in other keys`,
    );
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (k !== key && !DROPPED_ATTRIBUTES.has(k)) attributes[k] = v;
  const bytes = Buffer.byteLength(JSON.stringify(attributes));
  if (bytes > MAX_ATTRIBUTE_BYTES)
    return fail(
      `the other keys of the JSON object take ${bytes} bytes, over the ${MAX_ATTRIBUTE_BYTES} kept as attributes — print fewer or shorter fields`,
    );
  return ok(value as ProbeReading['value'], attributes);
}

/** `raw × scale`, rounded to `precision` decimals, or to 12 significant digits (0.001 × 45300 is 45.3, not 45.300000000000004). */
export function scaled(raw: number, scale = 1, precision?: number): number {
  const x = raw * scale;
  if (precision !== undefined) return Math.round(x * 10 ** precision) / 10 ** precision;
  return Number(x.toPrecision(12));
}

function firstLine(s: string): string {
  return (s.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 200);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
