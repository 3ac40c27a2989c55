/**
 * Property tests (issue 7, item 7): for any input, request parsing, param validation and argv
 * expansion end in a rejection or in exactly the whitelisted argv — and nothing throws.
 *
 * The seed is fixed so CI is reproducible; on a failure fast-check prints the seed and the shrunk
 * counterexample. `FUZZ_SEED=<n>` explores other inputs, `FUZZ_SCALE=<k>` runs k times as many.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { matchesWhole } from '../../src/core/template.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import type { ActionConfig, ParamSpec } from '../../src/config/schema.js';
import {
  MAX_COMMAND_LENGTH,
  MAX_PAYLOAD_BYTES,
  parseDelivery,
  type Delivery,
  type ParseOutcome,
  type Request,
} from '../../src/core/request.js';
import {
  matchCommand,
  resolveRequest,
  validateParams,
  type Job,
  type ResolveOutcome,
} from '../../src/core/resolve.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x7e57_0007;
const SCALE = process.env.FUZZ_SCALE ? Math.max(1, Number(process.env.FUZZ_SCALE)) : 1;
// Case counts per property: together at least 20,000 per `npm test` (issue 7: "at least 20,000 cases in CI").
const RUNS = {
  bytes: 4000,
  json: 8000,
  boundaries: 500,
  validate: 6000,
  resolve: 6000,
  match: 5000,
  matchOnly: 1500,
} as const;
const MIN_TOTAL = 20_000;
let executed = 0;

function check<Ts extends [unknown, ...unknown[]]>(
  runs: number,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => void,
): void {
  const property = fc.property(...arbs, (...args: Ts) => {
    executed++;
    predicate(...args);
  });
  fc.assert(property as fc.IProperty<Ts>, { numRuns: runs * SCALE, seed: SEED });
}

afterAll(() => {
  // Proof the budget ran: a property that silently stopped early would fail here.
  expect(executed).toBeGreaterThanOrEqual(MIN_TOTAL * SCALE);
});

// The contract's regexes, written out again here (docs/configuration.md § Top level; docs/mqtt-api.md § The request object) rather than imported from
// src/core/names.ts: the test must not share a typo with the code under test.
const CONTRACT_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const CONTRACT_ACTION = /^[a-z0-9][a-z0-9_]{0,62}$/;
const CONTRACT_ERROR_CODES = [
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
];
// C0, DEL and C1: never inside a value that reaches a command.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const PLACEHOLDER_SPLIT = /(\{[a-z][a-z0-9_]{0,62}\})/;

const NOW = Date.UTC(2026, 6, 1, 12, 0, 0);
const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  'isPrototypeOf',
];
const REQUEST_FIELDS = [
  'id',
  'action',
  'params',
  'command',
  'timeout',
  'ts',
  'ttl',
  'sig',
  'transaction',
  'press',
];
const ALIASES = ['action_id', 'action_type', 'parameters', 'timeout_seconds'];

/** Made-up ids are valid; the property checks the parser never returns anything else. */
function idMaker(): () => string {
  let n = 0;
  return () => `gen-${++n}`;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: JSON text is assembled by hand so that keys like "__proto__" stay plain own keys
// (as a broker delivers them) and duplicate keys are possible.

const actionName = fc.stringMatching(/^[a-z0-9][a-z0-9_]{0,8}$/);
const requestId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,70}$/);
const nastyText = fc.constantFrom(
  '',
  ' ',
  '-',
  '--',
  '-rf',
  '--help',
  'a b',
  'a\nb',
  '\u0000',
  '\u0085',
  '\u009b31m',
  '\u2028',
  '{a}',
  '{b}',
  '{unit}',
  '}{',
  '../..',
  '$(id)',
  '`id`',
  ';id',
  '|id',
  '*',
  'ümlaut',
  '😀',
  '\ud800',
  'x'.repeat(65),
  'a'.repeat(256),
  'a'.repeat(4097),
  '0',
  '-0',
  '007',
  '1e3',
  ' 5',
  '5 ',
  '0x10',
  '9007199254740993',
  '-10',
  '10',
  '11',
  '1000',
  '1001',
  'short',
  'json',
  'on',
  'off',
  '-x',
  'bad\nline',
  'ok',
  'world',
  'nginx.service',
  'restart_dns',
  'a/b',
  '+',
  '#',
);
const anyText = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 3, arbitrary: nastyText },
);
const anyNumber = fc.oneof(
  fc.integer(),
  fc.integer({ min: -20, max: 1100 }),
  fc.double(),
  fc.constantFrom(
    0,
    -0,
    0.0001,
    1.5,
    -1,
    1e21,
    1e300,
    2 ** 53,
    2 ** 53 + 2,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
  ),
);
const jsonKey = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...REQUEST_FIELDS, ...ALIASES) },
  { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS) },
  { weight: 1, arbitrary: anyText },
);

/** JSON text of a value: scalars, arrays and objects with hand-written keys, nested a little. */
const { jsonText } = fc.letrec<{ jsonText: string; objectText: string }>((tie) => ({
  jsonText: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    anyText.map((s) => JSON.stringify(s)),
    anyNumber.map((n) => JSON.stringify(n)),
    fc.constantFrom('true', 'false', 'null'),
    tie('objectText'),
    fc.array(tie('jsonText'), { maxLength: 3 }).map((xs) => `[${xs.join(',')}]`),
  ),
  objectText: fc.array(fc.tuple(jsonKey, tie('jsonText')), { maxLength: 4 }).map(objectFrom),
}));

function objectFrom(entries: [string, string][]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

/** A value for one request field: usually of a plausible type, sometimes anything. */
const fieldValue = (key: string): fc.Arbitrary<string> => {
  const plausible: Record<string, fc.Arbitrary<unknown>> = {
    id: fc.oneof(requestId, fc.integer(), anyNumber),
    action_id: fc.oneof(requestId, fc.integer(), anyNumber),
    action: fc.oneof(actionName, anyText),
    action_type: fc.oneof(actionName, anyText),
    command: fc.oneof(
      anyText,
      fc.constantFrom(
        'systemctl restart nginx',
        'x'.repeat(MAX_COMMAND_LENGTH),
        'x'.repeat(MAX_COMMAND_LENGTH + 1),
      ),
    ),
    timeout: anyNumber,
    timeout_seconds: anyNumber,
    ts: fc.oneof(fc.constant(NOW), fc.integer({ min: NOW - 100_000, max: NOW + 100_000 }), anyNumber),
    ttl: anyNumber,
    press: fc.oneof(fc.boolean(), anyNumber),
    sig: fc.oneof(anyText, fc.constant('s'.repeat(513))),
    transaction: fc.oneof(anyText, fc.constant('t'.repeat(64)), fc.constant('t'.repeat(65))),
  };
  const typed = Object.hasOwn(plausible, key) ? plausible[key] : undefined;
  if (key === 'params' || key === 'parameters') {
    return fc.oneof({ weight: 4, arbitrary: paramsText }, { weight: 1, arbitrary: jsonText });
  }
  return typed
    ? fc.oneof(
        { weight: 4, arbitrary: typed.map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: jsonText },
      )
    : jsonText;
};

const paramsText = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom('unit', 'lines', 'format', 'n', ...PROTO_KEYS), anyText),
      fc.oneof(
        anyText.map((s) => JSON.stringify(s)),
        jsonText,
      ),
    ),
    { maxLength: 4 },
  )
  .map(objectFrom);

/** Any keys with any values: mostly rejections. */
const looseRequestText = fc
  .array(
    jsonKey.chain((k) => fieldValue(k).map((v): [string, string] => [k, v])),
    { maxLength: 7 },
  )
  .map(objectFrom);

/** Close to a good request (aliases mixed in, odd param names): many get through, which is where a dropped or mangled field would show. */
const json = (arb: fc.Arbitrary<unknown>) => arb.map((v) => JSON.stringify(v));
const optionalField = (names: string[], value: fc.Arbitrary<string>) =>
  fc.option(fc.tuple(fc.constantFrom(...names), value), { freq: 2 });
const plausibleRequest = fc
  .tuple(
    actionName,
    fc.constantFrom('action', 'action_type', 'command', 'none'),
    optionalField(['id', 'action_id'], json(fc.oneof(requestId, fc.nat(), fc.integer()))),
    optionalField(['params', 'parameters'], paramsText),
    optionalField(['transaction'], json(anyText)),
    optionalField(
      ['timeout', 'timeout_seconds'],
      json(fc.oneof(fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 100, noNaN: true }))),
    ),
    optionalField(['ts'], json(fc.integer({ min: NOW - 120_000, max: NOW + 1000 }))),
    optionalField(['ttl'], json(fc.integer({ min: 1, max: 100 }))),
    optionalField(['sig'], json(anyText)),
    json(fc.oneof(anyText, fc.constant('systemctl restart nginx'))),
  )
  .chain(([action, how, ...rest]) => {
    const command = rest.pop() as string;
    const named: [string, string][] =
      how === 'none' ? [] : [[how, how === 'command' ? command : JSON.stringify(action)]];
    const fields = [
      ...named,
      ...(rest as ([string, string] | null)[]).filter((f): f is [string, string] => f !== null),
    ];
    return fc.tuple(
      fc.shuffledSubarray(fields, { minLength: Math.min(1, fields.length) }),
      fc.constantFrom(action, undefined, undefined),
    );
  })
  .map(([fields, topic]) => ({ text: objectFrom(fields), topic }));

/** Whitespace around the object, and now and then a cut or a stray byte (invalid JSON). */
const payloadText = fc
  .tuple(
    fc.constantFrom('', ' ', '\n\t ', '\ufeff'),
    looseRequestText,
    fc.constantFrom('', ' ', '\n'),
    fc.option(fc.nat(), { freq: 8 }),
    fc.option(fc.string({ maxLength: 2 }), { freq: 8 }),
  )
  .map(([pre, body, post, cut, junk]) => {
    let text = `${pre}${body}${post}`;
    if (cut !== null) text = text.slice(0, cut % (text.length + 1));
    if (junk !== null) text += junk;
    return text;
  });

const topicAction = fc.option(
  fc.oneof({ weight: 3, arbitrary: actionName }, { weight: 1, arbitrary: anyText }),
  { freq: 3 },
);

// ---------------------------------------------------------------------------------------------
// Properties of parseDelivery.

function checkParse(outcome: ParseOutcome, delivery: Delivery, sentJson: unknown): void {
  if (outcome.ok) {
    const r = outcome.request;
    expect(r.id).toMatch(CONTRACT_REQUEST_ID);
    if (r.action !== undefined) expect(r.action).toMatch(CONTRACT_ACTION);
    // A retained command is never run (docs/mqtt-api.md § Topics).
    expect(delivery.retained).toBe(false);
    expect(r.action !== undefined || r.command !== undefined).toBe(true);
    if (delivery.topicAction !== undefined) expect(r.action).toBe(delivery.topicAction);
    if (r.command !== undefined) expect(r.command.length).toBeLessThanOrEqual(MAX_COMMAND_LENGTH);
    if (r.transaction !== undefined) expect(r.transaction.length).toBeLessThanOrEqual(64);
    // May round to 0 or overflow to Infinity ("timeout": 1e308): resolveRequest bounds it by the action's timeout.
    if (r.timeoutMs !== undefined) expect(r.timeoutMs >= 0).toBe(true);
    expect(typeof r.params === 'object' && r.params !== null && !Array.isArray(r.params)).toBe(true);
    // A press takes its params from the HA entities: it carries none of its own.
    if (r.press && !delivery.payload.toString().trimStart().startsWith('{')) expect(r.params).toEqual({});
    if (r.press && typeof sentJson === 'object' && sentJson !== null)
      expect(Object.hasOwn(sentJson, 'params') || Object.hasOwn(sentJson, 'parameters')).toBe(false);
    // Every param that was sent reaches validation — none (not even "__proto__") is silently dropped.
    const sent = sentParams(sentJson);
    if (sent) expect(Object.keys(r.params).sort()).toEqual(Object.keys(sent).sort());
  } else {
    expect(CONTRACT_ERROR_CODES).toContain(outcome.rejection.code);
    expect(typeof outcome.rejection.error).toBe('string');
    expect(outcome.rejection.error.trim()).not.toBe('');
    // The rejection is published on P/H/result/ID: its id must be a valid topic level too.
    expect(outcome.ref.id).toMatch(CONTRACT_REQUEST_ID);
    if (outcome.ref.action !== null) expect(outcome.ref.action).toMatch(CONTRACT_ACTION);
    if (outcome.ref.transaction !== undefined) expect(outcome.ref.transaction.length).toBeLessThanOrEqual(64);
  }
  // Nothing in any payload reaches Object.prototype.
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(OBJECT_PROTO_NAMES);
}
const OBJECT_PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();

function sentParams(json: unknown): Record<string, unknown> | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const o = json as Record<string, unknown>;
  const p = Object.hasOwn(o, 'params') ? o.params : Object.hasOwn(o, 'parameters') ? o.parameters : undefined;
  return typeof p === 'object' && p !== null && !Array.isArray(p)
    ? (p as Record<string, unknown>)
    : undefined;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

describe('fuzz: parseDelivery never throws and returns a valid request or a contract rejection', () => {
  it(`arbitrary payload bytes (${RUNS.bytes} cases)`, () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // A "{" first, then garbage: the JSON path with invalid UTF-8 and broken syntax.
      fc.uint8Array({ maxLength: 120 }).map((b) => Uint8Array.from([0x7b, ...b])),
      fc
        .uint8Array({ maxLength: 60 })
        .map((b) => Uint8Array.from([0x20, 0x0a, 0x7b, 0x22, ...b, 0x22, 0x3a, 0x31, 0x7d])),
    );
    check(
      RUNS.bytes,
      [bytes, topicAction, fc.boolean(), fc.integer({ min: 0, max: 8 })],
      (payload, action, retained, offset) => {
        // Deliveries may be views into a bigger buffer (MQTT.js hands out slices).
        const backing = new Uint8Array(payload.length + offset * 2).fill(0x7b);
        backing.set(payload, offset);
        const view = backing.subarray(offset, offset + payload.length);
        const delivery: Delivery = { topicAction: action ?? undefined, payload: view, retained };
        checkParse(
          parseDelivery(delivery, NOW, idMaker()),
          delivery,
          tryJson(Buffer.from(payload).toString('utf8')),
        );
      },
    );
  });

  it(`arbitrary request objects: aliases, prototype keys, unicode (${RUNS.json} cases)`, () => {
    let accepted = 0;
    const clock = fc.oneof(fc.constant(NOW), fc.integer({ min: NOW - 10_000_000, max: NOW + 10_000_000 }));
    const delivery = fc.oneof(
      fc.record({ text: payloadText, topic: topicAction.map((a) => a ?? undefined), retained: fc.boolean() }),
      fc
        .tuple(plausibleRequest, fc.constantFrom(false, false, false, true))
        .map(([r, retained]) => ({ ...r, retained })),
    );
    check(RUNS.json, [delivery, clock], ({ text, topic, retained }, now) => {
      const delivery: Delivery = { topicAction: topic, payload: Buffer.from(text, 'utf8'), retained };
      const outcome = parseDelivery(delivery, now, idMaker());
      checkParse(outcome, delivery, tryJson(text));
      if (outcome.ok) accepted++;
    });
    // Not vacuous: enough requests get through for the properties of accepted ones to bite.
    expect(accepted).toBeGreaterThan((RUNS.json * SCALE) / 10);
  });

  it(`huge payloads and fields at their limits (${RUNS.boundaries} cases)`, () => {
    const big = fc.tuple(
      fc.constantFrom('x', 'é', '😀', '{'),
      fc.integer({ min: 1000, max: MAX_PAYLOAD_BYTES + 100 }),
      fc.constantFrom('id', 'command', 'transaction', 'sig', 'params', 'junk'),
    );
    check(RUNS.boundaries, [big, topicAction, fc.boolean()], ([ch, n, field], action, retained) => {
      const fill = ch.repeat(Math.ceil(n / Buffer.byteLength(ch)));
      const value = field === 'params' ? `{"unit":${JSON.stringify(fill)}}` : JSON.stringify(fill);
      const text = `{"action":"restart_service",${JSON.stringify(field)}:${value}}`;
      const delivery: Delivery = {
        topicAction: action ?? undefined,
        payload: Buffer.from(text, 'utf8'),
        retained,
      };
      const outcome = parseDelivery(delivery, NOW, idMaker());
      checkParse(outcome, delivery, tryJson(text));
      if (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES) expect(outcome.ok).toBe(false);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Param validation and argv expansion, over configs built by the real config parser.

const YAML = String.raw`
host: fuzz-host
execution: { timeout: 30s }
actions:
  restart_service:
    argv: [systemctl, restart, "{unit}"]
    params: { unit: { type: string, pattern: "^[a-zA-Z0-9_.@-]{1,64}$" } }
    pattern: "^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$"
  journal:
    # An unanchored param pattern (anchored by the agent) and a deliberately loose command
    # pattern: validation, not the command pattern, must stop bad values.
    argv: [journalctl, "--unit={unit}", "--lines={lines}", "--output={format}"]
    params:
      unit: { type: string, pattern: "[a-z0-9_.@-]{1,64}" }
      lines: { type: integer, min: 1, max: 1000, default: 50 }
      format: { type: enum, values: [short, json, cat], default: short }
    pattern: "journalctl -u (?<unit>\\S+)(?: -n (?<lines>\\S+))?(?: -o (?<format>\\S+))?"
  echo:
    argv: [echo, "{message}"]
    params: { message: { type: string, pattern: "[\\s\\S]*", max_length: 4096 } }
    pattern: "echo (?<message>[\\s\\S]*)"
  alt:
    # Alternation: anchoring must wrap the whole of it, not only its first branch.
    argv: [tool, "{x}"]
    params: { x: { type: string, pattern: "a|b.*", max_length: 16 } }
    pattern: "alt (?<x>.*)"
  scale:
    # One param in two elements, one of them after an option-looking literal.
    argv: [scaler, "{n}", "--to={n}", "{n}x"]
    params: { n: { type: integer, min: -10, max: 10 } }
    pattern: "scale (?<n>\\S*)"
  count:
    argv: [count, "{n}"]
    params: { n: { type: integer } }
    pattern: "count (?<n>.*)"
  join:
    # A value may contain "{b}": it must land as text, never be expanded again.
    argv: [greet, "{a}:{b}", "pre{a}{a}post", "{b}"]
    params:
      a: { type: string, pattern: "[a-z{}]{1,10}" }
      b: { type: string, pattern: "[^/]{1,10}", default: world }
    pattern: "greet (?<a>\\S+) (?<b>.+)"
  mode:
    steps: [[svc, "{mode}"], [svc, "--mode={mode}", "{level}"]]
    params:
      mode: { type: enum, values: ["on", "off", "-x", "a b", "ümlaut"] }
      level: { type: integer, min: 0, max: 3, default: 1 }
    pattern: "mode (?<mode>\\S+)(?: (?<level>\\S+))?"
  say:
    argv: [say, "{word}"]
    params: { word: { type: string, pattern: "\\p{L}{1,8}" } }
    pattern: "say (?<word>.*)"
  plain:
    argv: [uptime]
    pattern: "uptime"
  ctrl:
    # Values that come from the config, not the request: an enum value and a default that hold
    # control characters (the schema lets them through) must still never reach an argv.
    argv: [ctl, "{v}", "{m}"]
    params:
      v: { type: enum, values: [ok, "bad\nline", "tab\there"] }
      m: { type: string, pattern: "[\\s\\S]{0,8}", default: "a\u0007b" }
    pattern: "ctl (?<v>\\S+)(?: (?<m>.*))?"
`;

const config: Config = parseConfig(YAML, '/nonexistent/fuzz.yaml', {});
const actions = config.actions;
const defaults = { sudo: false, timeoutMs: config.execution.timeout };
const actionNames = Object.keys(actions);

/** For generating values only: the agent matches with RE2 (matchesWhole). */
function anchoredRe(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'u');
}

/** One validated value against its spec, as the contract states it. */
function expectValid(name: string, spec: ParamSpec, value: string | undefined): void {
  expect(typeof value, `param ${name}`).toBe('string');
  const v = value as string;
  expect(CONTROL.test(v), `param ${name} = ${JSON.stringify(v)} has a control character`).toBe(false);
  switch (spec.type) {
    case 'string':
      // The agent's own semantics (RE2): JavaScript's "." refuses \r, RE2's only \n.
      expect(matchesWhole(spec.pattern, v), `param ${name} = ${JSON.stringify(v)} vs ${spec.pattern}`).toBe(
        true,
      );
      expect(v.length).toBeLessThanOrEqual(spec.max_length);
      break;
    case 'integer': {
      expect(v).toMatch(/^(0|-?[1-9][0-9]*)$/);
      const n = Number(v);
      expect(Number.isSafeInteger(n)).toBe(true);
      if (spec.min !== undefined) expect(n).toBeGreaterThanOrEqual(spec.min);
      if (spec.max !== undefined) expect(n).toBeLessThanOrEqual(spec.max);
      break;
    }
    case 'enum':
      expect(spec.values).toContain(v);
      break;
  }
}

function expectValidParams(action: ActionConfig, params: Record<string, string>): void {
  expect(Object.keys(params).sort()).toEqual(Object.keys(action.params).sort());
  for (const [name, spec] of Object.entries(action.params)) expectValid(name, spec, params[name]);
}

/** The template with each {param} replaced by exactly its value, computed independently of template.ts. */
function expand(element: string, params: Record<string, string>): string {
  return element
    .split(PLACEHOLDER_SPLIT)
    .map((part, i) => (i % 2 === 1 ? (params[part.slice(1, -1)] as string) : part))
    .join('');
}

function expectJob(name: string, job: Job): void {
  const action = actions[name] as ActionConfig;
  expect(job.action).toBe(name);
  expectValidParams(action, job.params);
  const template = action.argv ? [action.argv] : (action.steps ?? []);
  // No command added or dropped, no element added or split.
  expect(job.commands.map((c) => c.length)).toEqual(template.map((t) => t.length));
  template.forEach((argv, i) => {
    argv.forEach((element, j) => {
      const got = job.commands[i]?.[j] as string;
      expect(got).toBe(expand(element, job.params));
      // [contract] option injection: only elements the config wrote with "-" may begin with it.
      if (!element.startsWith('-'))
        expect(got.startsWith('-'), `element ${JSON.stringify(got)} from ${JSON.stringify(element)}`).toBe(
          false,
        );
    });
  });
}

function expectResolved(outcome: ResolveOutcome, stats: { jobs: number }): void {
  if (outcome.ok) {
    stats.jobs++;
    expectJob(outcome.job.action, outcome.job);
  } else {
    expect(['invalid_request', 'unknown_action', 'invalid_params', 'not_whitelisted']).toContain(
      outcome.rejection.code,
    );
    expect(outcome.rejection.error.trim()).not.toBe('');
  }
}

/** A good value for a spec, mostly; the rest of the time anything at all. */
function valueFor(spec: ParamSpec, names: string[]): fc.Arbitrary<unknown> {
  const good: fc.Arbitrary<unknown> =
    spec.type === 'enum'
      ? fc.constantFrom(...spec.values)
      : spec.type === 'integer'
        ? fc.oneof(
            fc.integer({ min: spec.min ?? -1e6, max: spec.max ?? 1e6 }),
            fc.integer({ min: spec.min ?? -1e6, max: spec.max ?? 1e6 }).map(String),
          )
        : spec.type === 'path'
          ? fc.constantFrom(...spec.roots.map((r) => `${r}/x.log`))
          : /\\p/.test(spec.pattern)
            ? fc.string({
                unit: fc.constantFrom('a', 'é', 'ß', 'Ω', '中', '1', '-'),
                minLength: 1,
                maxLength: 9,
              })
            : fc.stringMatching(anchoredRe(spec.pattern.replace(/^\^|\$$/g, '')));
  // A value that looks like a placeholder of the same action must land as text, never expand again.
  const placeholderLike = fc
    .tuple(
      fc.constantFrom('', 'x', '{'),
      fc.constantFrom(...names.map((n) => `{${n}}`)),
      fc.constantFrom('', 'y', '}', '{a}'),
    )
    .map(([pre, p, post]) => `${pre}${p}${post}`);
  return fc.oneof(
    { weight: 8, arbitrary: good },
    { weight: 1, arbitrary: placeholderLike },
    { weight: 2, arbitrary: anyValue },
  );
}
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: anyText },
  { weight: 3, arbitrary: anyNumber },
  { weight: 1, arbitrary: fc.constantFrom(true, false, null, undefined) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.constantFrom('-' as unknown, '-5', -5, '--x', 'a\u0000', 'x'.repeat(300)) },
);

/** Params for an action: its own names (some left out), plus now and then an unknown or prototype key. */
function paramsFor(action: ActionConfig): fc.Arbitrary<Record<string, unknown>> {
  const own = Object.entries(action.params).map(([name, spec]) =>
    fc.option(valueFor(spec, Object.keys(action.params)), { freq: 6 }).map((v) => [name, v] as const),
  );
  // One case in six carries a key the action does not declare.
  const extra = fc.oneof(
    { weight: 5, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.oneof(fc.constantFrom(...PROTO_KEYS, 'unit', 'n', 'b'), anyText), anyValue),
    },
  );
  return fc.tuple(fc.tuple(...own), extra).map(([pairs, more]) => {
    const out: Record<string, unknown> = {};
    // defineProperty: a "__proto__" key is an own key here, as JSON.parse would make it.
    const put = (k: string, v: unknown) =>
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    for (const [k, v] of pairs) if (v !== null) put(k, v);
    if (more) put(more[0], more[1]);
    return out;
  });
}

// Built once per action: building arbitraries (regex parsing in stringMatching) per case is slow.
const actionWithParams = fc.oneof(
  ...actionNames.map((name) => paramsFor(actions[name] as ActionConfig).map((params) => ({ name, params }))),
);

function request(fields: Partial<Request>): Request {
  return {
    id: 'fuzz-1',
    generatedId: false,
    press: false,
    action: undefined,
    params: {},
    command: undefined,
    timeoutMs: undefined,
    ts: undefined,
    ttl: undefined,
    sig: undefined,
    transaction: undefined,
    ...fields,
  };
}

describe('fuzz: param validation and argv expansion', () => {
  it(`validateParams: a message, or exactly the declared params, each valid (${RUNS.validate} cases)`, () => {
    const stats = { jobs: 0 };
    check(RUNS.validate, [actionWithParams], ({ name, params }) => {
      const action = actions[name] as ActionConfig;
      const out = validateParams(action.params, params);
      if (typeof out === 'string') {
        expect(out.trim()).not.toBe('');
        return;
      }
      stats.jobs++;
      expectValidParams(action, out);
      // Given values are kept as given (integers in canonical decimal), defaults fill the rest.
      for (const [k, spec] of Object.entries(action.params)) {
        const given = Object.hasOwn(params, k) ? params[k] : undefined;
        if (given === undefined || given === null) expect(out[k]).toBe(String(spec.default));
        else if (spec.type === 'integer') expect(out[k]).toBe(String(Number(given)));
        else expect(out[k]).toBe(given);
      }
    });
    // Not vacuous: a fair share of cases got through validation.
    expect(stats.jobs).toBeGreaterThan((RUNS.validate * SCALE) / 10);
  });

  it(`resolveRequest: a rejection, or the template with each value as exactly one element (${RUNS.resolve} cases)`, () => {
    const stats = { jobs: 0 };
    const timeout = fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 40_000 }) },
      { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, Infinity) },
    );
    check(RUNS.resolve, [actionWithParams, timeout], ({ name, params }, timeoutMs) => {
      const outcome = resolveRequest(request({ action: name, params, timeoutMs }), actions, defaults);
      expectResolved(outcome, stats);
      if (outcome.ok) expect(outcome.job.timeoutMs).toBeLessThanOrEqual(outcome.job.actionTimeoutMs);
    });
    expect(stats.jobs).toBeGreaterThan((RUNS.resolve * SCALE) / 10);
  });
});

describe('fuzz: raw commands', () => {
  // Command-shaped strings reach the patterns' interesting parts; arbitrary strings cover the rest.
  const heads = [
    'systemctl restart ',
    'journalctl -u ',
    'echo ',
    'alt ',
    'scale ',
    'count ',
    'greet ',
    'mode ',
    'say ',
    'uptime',
    '',
  ];
  const word = fc.oneof(
    anyText,
    fc.stringMatching(/^[a-z0-9_.@{}-]{1,12}$/),
    fc.integer({ min: -20, max: 2000 }).map(String),
  );
  const command = fc.oneof(
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...heads),
          word,
          fc.option(fc.tuple(fc.constantFrom(' -n ', ' -o ', ' ', '\n', ' -u '), word), { freq: 2 }),
          fc.option(fc.tuple(fc.constantFrom(' -o ', ' '), word), { freq: 3 }),
        )
        .map(([h, w, a, b]) => `${h}${w}${a ? a.join('') : ''}${b ? b.join('') : ''}`),
    },
  );

  it(`matchCommand + resolveRequest: no match is not_whitelisted; a match resolves to a valid job or a rejection (${RUNS.match} cases)`, () => {
    const stats = { jobs: 0 };
    check(RUNS.match, [command], (cmd) => {
      const m = matchCommand(cmd, actions);
      const outcome = resolveRequest(request({ command: cmd }), actions, defaults);
      if (!m) {
        expect(outcome.ok).toBe(false);
        if (!outcome.ok) expect(outcome.rejection.code).toBe('not_whitelisted');
        return;
      }
      const action = actions[m.action] as ActionConfig;
      expect(matchesWhole(action.pattern as string, cmd)).toBe(true);
      for (const k of Object.keys(m.params)) expect(Object.hasOwn(action.params, k)).toBe(true);
      expectResolved(outcome, stats);
      if (outcome.ok) {
        expect(outcome.job.action).toBe(m.action);
        // Captured values reach the argv unchanged (integers canonicalised).
        for (const [k, v] of Object.entries(m.params)) {
          expect(outcome.job.params[k]).toBe(action.params[k]?.type === 'integer' ? String(Number(v)) : v);
        }
      }
    });
    expect(stats.jobs).toBeGreaterThan((RUNS.match * SCALE) / 20);
  });

  it(`matchCommand limited to one action only ever names that action (${RUNS.matchOnly} cases)`, () => {
    check(RUNS.matchOnly, [command, fc.oneof(fc.constantFrom(...actionNames), actionName)], (cmd, only) => {
      const m = matchCommand(cmd, actions, only);
      if (m) expect(m.action).toBe(only);
      const outcome = resolveRequest(request({ command: cmd, action: only }), actions, defaults);
      if (!m) expect(!outcome.ok && outcome.rejection.code).toBe('not_whitelisted');
      else expectResolved(outcome, { jobs: 0 });
    });
  });
});
