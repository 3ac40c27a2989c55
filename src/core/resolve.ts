/**
 * Action resolution: a request becomes exactly the whitelisted argv, or a rejection.
 * No shell anywhere: every param value lands inside one argv element.
 */
import type { ActionConfig, HealthCheckConfig, ParamSpec } from '../config/schema.js';
import type { Request } from './request.js';
import type { Rejection } from './result.js';
import { capturesWhole, expandElement, matchesWhole } from './template.js';
import { formatDuration } from './duration.js';
import { lexicalPath } from './paths.js';
import { CONTROL_RE } from './names.js';

export interface Job {
  action: string;
  params: Record<string, string>;
  /** One argv for `argv` actions, several for `steps`. Executables as written; exec resolves them. */
  commands: string[][];
  sudo: boolean;
  /** The timeout this run gets: the request's, or the action's. */
  timeoutMs: number;
  /** The action's own timeout (the sudo wrapper uses it so sudoers lines stay fixed). */
  actionTimeoutMs: number;
  env: Record<string, string>;
  /** Resource limits (the action's, else security.limits). */
  limits: Limits | undefined;
  /** Deployments: run when a step or the health check fails, with the same sudo; its own timeout budget. */
  rollback?: string[][] | undefined;
  /** Deployments: checked after the steps succeed (never sudo, never params). */
  health?: HealthCheckConfig | undefined;
  /** Idempotent actions only: how often to run again after a failure. */
  retry?: { attempts: number; backoffMs: number } | undefined;
}

/** Resource limits: bytes, milliseconds of CPU, counts (config: `limits`). */
export interface Limits {
  memory?: number | undefined;
  cpu?: number | undefined;
  processes?: number | undefined;
  file_size?: number | undefined;
  open_files?: number | undefined;
}

export interface ResolveDefaults {
  sudo: boolean;
  timeoutMs: number;
  limits?: Limits | undefined;
}

export type ResolveOutcome =
  { ok: true; job: Job } | { ok: false; action: string | null; rejection: Rejection };

export function resolveRequest(
  req: Request,
  actions: Readonly<Record<string, ActionConfig>>,
  defaults: ResolveDefaults,
): ResolveOutcome {
  let name = req.action;
  let rawParams: Record<string, unknown> = req.params;

  if (req.command !== undefined) {
    const match = matchCommand(req.command, actions, req.action);
    if (!match) {
      const scope =
        req.action === undefined ? "any action's pattern" : `the pattern of action "${req.action}"`;
      return {
        ok: false,
        action: req.action ?? null,
        rejection: {
          code: 'not_whitelisted',
          error: `the command does not fully match ${scope} — only whitelisted command shapes run; see the action patterns in the agent's config`,
        },
      };
    }
    name = match.action;
    rawParams = match.params;
  }
  if (name === undefined)
    return { ok: false, action: null, rejection: { code: 'invalid_request', error: 'no action named' } };
  const action = Object.hasOwn(actions, name) ? actions[name] : undefined;
  if (!action) {
    const known = Object.keys(actions).sort().join(', ') || '(none configured)';
    return {
      ok: false,
      action: name,
      rejection: {
        code: 'unknown_action',
        error: `this host has no action "${name}" — known actions: ${known}`,
      },
    };
  }

  const params = validateParams(action.params, rawParams);
  if (typeof params === 'string')
    return { ok: false, action: name, rejection: { code: 'invalid_params', error: params } };

  const expanded = expandCommands(action, params);
  if ('code' in expanded) return { ok: false, action: name, rejection: expanded };

  const actionTimeoutMs = action.timeout ?? defaults.timeoutMs;
  if (req.timeoutMs !== undefined && req.timeoutMs > actionTimeoutMs) {
    return {
      ok: false,
      action: name,
      rejection: {
        code: 'invalid_request',
        error: `"timeout" ${req.timeoutMs / 1000} s is more than action "${name}" allows (${formatDuration(actionTimeoutMs)}) — ask for less, or raise the action's timeout in config`,
      },
    };
  }
  return {
    ok: true,
    job: {
      action: name,
      params,
      ...expanded,
      sudo: action.sudo ?? defaults.sudo,
      timeoutMs: req.timeoutMs ?? actionTimeoutMs,
      actionTimeoutMs,
      env: action.env,
      limits: action.limits ?? defaults.limits,
      ...(action.health ? { health: action.health } : {}),
      ...(action.retry
        ? { retry: { attempts: action.retry.attempts, backoffMs: action.retry.backoff } }
        : {}),
    },
  };
}

/** The action's commands (and rollback steps) with `params` filled in, or the option-injection rejection. */
export function expandCommands(
  action: Pick<ActionConfig, 'argv' | 'steps' | 'rollback'>,
  params: Readonly<Record<string, string>>,
): { commands: string[][]; rollback?: string[][] } | Rejection {
  const expand = (template: readonly string[][]): string[][] | Rejection => {
    const out: string[][] = [];
    for (const argv of template) {
      const expanded: string[] = [];
      for (const element of argv) {
        const value = expandElement(element, params);
        // [contract] an element that begins with "-" because of a param is option injection.
        if (value.startsWith('-') && !element.startsWith('-')) {
          return {
            code: 'invalid_params',
            error: `a param value would make the argument "${truncate(value)}" begin with "-" (an option) — values may not start with "-"`,
          };
        }
        expanded.push(value);
      }
      out.push(expanded);
    }
    return out;
  };
  const commands = expand(action.argv ? [action.argv] : (action.steps ?? []));
  if ('code' in commands) return commands;
  if (!action.rollback) return { commands };
  const rollback = expand(action.rollback);
  return 'code' in rollback ? rollback : { commands, rollback };
}

/** Validated params as strings (argv is text), defaults applied; or a message naming the bad param. */
export function validateParams(
  specs: Readonly<Record<string, ParamSpec>>,
  given: Record<string, unknown>,
): Record<string, string> | string {
  const unknown = Object.keys(given).filter((k) => !Object.hasOwn(specs, k));
  if (unknown.length > 0) {
    const known = Object.keys(specs).join(', ') || '(none)';
    return `unknown param(s) ${unknown.map((k) => `"${truncate(k)}"`).join(', ')} — this action takes: ${known}`;
  }
  const out: Record<string, string> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const value = Object.hasOwn(given, name) ? given[name] : undefined;
    let result: string;
    if (value === undefined || value === null) {
      if (spec.default === undefined) return `param "${name}" is required — add it to "params"`;
      result = String(spec.default);
      if (spec.type === 'path') {
        // A relative default means "inside the first root": it is resolved like a given value.
        const checked = checkParam(name, spec, result);
        if (checked.error !== undefined) return checked.error;
        result = checked.value;
      }
    } else {
      const checked = checkParam(name, spec, value);
      if (checked.error !== undefined) return checked.error;
      result = checked.value;
    }
    // Defaults and enum values come from the config, whose schema takes any text: a control
    // character from there must not reach a command either (found by test/unit/fuzz.test.ts).
    if (CONTROL_RE.test(result))
      return `param "${name}" would pass a control character (newline, NUL, …) to the command — its default or enum values in the config must not contain one`;
    out[name] = result;
  }
  return out;
}

function checkParam(
  name: string,
  spec: ParamSpec,
  value: unknown,
): { value: string; error?: undefined } | { error: string } {
  switch (spec.type) {
    case 'string': {
      if (typeof value !== 'string') return { error: `param "${name}" must be a JSON string` };
      if (value.length > spec.max_length)
        return { error: `param "${name}" is ${value.length} characters; at most ${spec.max_length}` };
      if (CONTROL_RE.test(value))
        return {
          error: `param "${name}" contains a control character (newline, NUL, …) — these are never accepted`,
        };
      // RE2: linear in the value whatever the pattern (docs/configuration.md § Patterns).
      if (!matchesWhole(spec.pattern, value))
        return { error: `param "${name}" does not match its pattern ${spec.pattern}` };
      return { value };
    }
    case 'integer': {
      let n: number;
      if (typeof value === 'number' && Number.isSafeInteger(value)) n = value;
      else if (typeof value === 'string' && /^-?\d{1,15}$/.test(value)) n = Number(value);
      else return { error: `param "${name}" must be a whole number (a JSON integer or a decimal string)` };
      if (spec.min !== undefined && n < spec.min)
        return { error: `param "${name}" is ${n}; the minimum is ${spec.min}` };
      if (spec.max !== undefined && n > spec.max)
        return { error: `param "${name}" is ${n}; the maximum is ${spec.max}` };
      return { value: String(n) };
    }
    case 'enum': {
      if (typeof value !== 'string' || !spec.values.includes(value)) {
        return { error: `param "${name}" must be one of: ${spec.values.join(', ')}` };
      }
      return { value };
    }
    case 'path': {
      if (typeof value !== 'string')
        return { error: `param "${name}" must be a JSON string (a path inside ${spec.roots.join(', ')})` };
      const checked = lexicalPath(value, spec.roots);
      return 'error' in checked ? { error: `param "${name}" ${checked.error}` } : checked;
    }
    default: {
      // Fail closed: a type this code does not know (a config from a newer version) lets nothing through.
      const type = String((spec as { type?: unknown }).type);
      return {
        error: `param "${name}" has a type this agent does not know (${truncate(type)}) — use string, integer, enum or path, or upgrade the agent`,
      };
    }
  }
}

/** Which action a raw command is: the first whose pattern matches it whole. */
export function matchCommand(
  command: string,
  actions: Readonly<Record<string, ActionConfig>>,
  only?: string,
): { action: string; params: Record<string, string> } | undefined {
  for (const [name, action] of Object.entries(actions)) {
    if (action.pattern === undefined || (only !== undefined && name !== only)) continue;
    // The cheap whole-match test first (RE2's DFA); captures only for the action that matches.
    if (!matchesWhole(action.pattern, command)) continue;
    const params = capturesWhole(action.pattern, command);
    if (params) return { action: name, params };
  }
  return undefined;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
