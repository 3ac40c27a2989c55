import { describe, it, expect } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import { parseDelivery, type Request } from '../../src/core/request.js';
import {
  matchCommand,
  resolveRequest,
  validateParams,
  type Job,
  type ResolveOutcome,
} from '../../src/core/resolve.js';

const YAML = String.raw`
host: test-host
execution:
  sudo: true
  timeout: 30s
actions:
  restart_service:
    argv: [systemctl, restart, "{unit}"]
    params:
      unit: { type: string, pattern: "^[a-zA-Z0-9_.@-]{1,64}$" }
    pattern: "^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$"
    timeout: 60s
  journal:
    argv: [journalctl, "--unit={unit}", "--lines={lines}", "--output={format}"]
    params:
      unit: { type: string, pattern: "^[a-z0-9_.@-]{1,64}$" }
      lines: { type: integer, min: 1, max: 1000, default: 50 }
      format: { type: enum, values: [short, json, cat], default: short }
    pattern: "^journalctl -u (?<unit>[a-z0-9_.@-]{1,64})(?: -n (?<lines>[0-9]{1,4}))?(?: -o (?<format>[a-z]+))?$"
    sudo: false
    env: { SYSTEMD_COLORS: "0" }
  echo:
    argv: [echo, "{message}"]
    params:
      message: { type: string, pattern: "^[\\s\\S]*$", max_length: 4096 }
    pattern: "^echo (?<message>[\\s\\S]*)$"
    sudo: false
    timeout: 5s
  short_word:
    argv: [printf, "%s", "{word}"]
    params:
      word: { type: string, pattern: "^[a-z]+$", max_length: 8 }
  apply_updates:
    steps: [[apt-get, update], [apt-get, -y, upgrade]]
    timeout: 30m
  backup:
    steps: [[mkdir, -p, "/backup/{name}"], [tar, -czf, "/backup/{name}/data.tgz", /data]]
    params:
      name: { type: string, pattern: "^[a-z0-9]{1,16}$", default: daily }
  scale:
    argv: [scaler, "{n}"]
    params:
      n: { type: integer, min: -10, max: 10 }
  join:
    argv: [greet, "{a}:{b}"]
    params:
      a: { type: string, pattern: "^[a-z{}]{1,10}$" }
      b: { type: string, pattern: "^[a-z]{1,10}$", default: world }
`;

const config: Config = parseConfig(YAML, '/nonexistent/resolve-test.yaml', {});
const defaults = { sudo: config.execution.sudo, timeoutMs: config.execution.timeout };

function req(fields: Partial<Request>): Request {
  return {
    id: 'r1',
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

const resolve = (fields: Partial<Request>): ResolveOutcome =>
  resolveRequest(req(fields), config.actions, defaults);

function job(outcome: ResolveOutcome): Job {
  if (!outcome.ok)
    throw new Error(`expected a job, got ${outcome.rejection.code}: ${outcome.rejection.error}`);
  return outcome.job;
}

function refused(outcome: ResolveOutcome) {
  if (outcome.ok) throw new Error(`expected a rejection, got a job: ${JSON.stringify(outcome.job.commands)}`);
  return outcome;
}

describe('resolveRequest: argv actions', () => {
  it('expands a param inside its element and applies the action settings', () => {
    expect(job(resolve({ action: 'restart_service', params: { unit: 'nginx.service' } }))).toEqual({
      action: 'restart_service',
      params: { unit: 'nginx.service' },
      commands: [['systemctl', 'restart', 'nginx.service']],
      sudo: true,
      timeoutMs: 60_000,
      actionTimeoutMs: 60_000,
      env: {},
    });
  });

  it('applies defaults for params not given, and carries the action env', () => {
    const j = job(resolve({ action: 'journal', params: { unit: 'ssh' } }));
    expect(j.params).toEqual({ unit: 'ssh', lines: '50', format: 'short' });
    expect(j.commands).toEqual([['journalctl', '--unit=ssh', '--lines=50', '--output=short']]);
    expect(j.env).toEqual({ SYSTEMD_COLORS: '0' });
  });

  it('a null param counts as not given (default applies)', () => {
    expect(job(resolve({ action: 'journal', params: { unit: 'ssh', lines: null } })).params.lines).toBe('50');
  });

  it('a value is never expanded twice: "{b}" given as a value stays literal', () => {
    const j = job(resolve({ action: 'join', params: { a: '{b}', b: 'x' } }));
    expect(j.commands).toEqual([['greet', '{b}:x']]);
  });

  it.each([
    ['action sudo wins over execution.sudo', 'journal', { unit: 'ssh' }, false],
    ['execution.sudo is the default', 'apply_updates', {}, true],
  ])('%s', (_label, action, params, sudo) => {
    expect(job(resolve({ action, params })).sudo).toBe(sudo);
  });

  it('sudo defaults to false when execution.sudo is not set', () => {
    const plain = parseConfig('actions:\n  up:\n    argv: [uptime]\n', '/nonexistent/x.yaml', {});
    const outcome = resolveRequest(req({ action: 'up' }), plain.actions, {
      sudo: plain.execution.sudo,
      timeoutMs: plain.execution.timeout,
    });
    expect(job(outcome).sudo).toBe(false);
    expect(job(outcome).timeoutMs).toBe(30_000);
  });
});

describe('resolveRequest: steps', () => {
  it('expands every step in order', () => {
    const j = job(resolve({ action: 'apply_updates' }));
    expect(j.commands).toEqual([
      ['apt-get', 'update'],
      ['apt-get', '-y', 'upgrade'],
    ]);
    expect(j.timeoutMs).toBe(1_800_000);
  });

  it('a param is expanded in every step that uses it', () => {
    expect(job(resolve({ action: 'backup', params: { name: 'weekly' } })).commands).toEqual([
      ['mkdir', '-p', '/backup/weekly'],
      ['tar', '-czf', '/backup/weekly/data.tgz', '/data'],
    ]);
  });

  it('defaults apply in steps too', () => {
    expect(job(resolve({ action: 'backup' })).commands[1]).toEqual([
      'tar',
      '-czf',
      '/backup/daily/data.tgz',
      '/data',
    ]);
  });
});

describe('resolveRequest: timeout', () => {
  it.each([
    ['below the action timeout is used', 'restart_service', 10_000, 10_000],
    ['equal to the action timeout is used', 'restart_service', 60_000, 60_000],
    ['absent → the action timeout', 'restart_service', undefined, 60_000],
    ['absent, no action timeout → execution.timeout', 'short_word', undefined, 30_000],
  ])('%s', (_label, action, timeoutMs, expected) => {
    const params = action === 'restart_service' ? { unit: 'nginx' } : { word: 'hi' };
    const j = job(resolve({ action, params, timeoutMs }));
    expect(j.timeoutMs).toBe(expected);
    expect(j.actionTimeoutMs).toBe(action === 'restart_service' ? 60_000 : 30_000);
  });

  it('above the action timeout → invalid_request naming both, saying what to change', () => {
    const r = refused(resolve({ action: 'echo', params: { message: 'hi' }, timeoutMs: 6_000 }));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toBe(
      '"timeout" 6 s is more than action "echo" allows (5s) — ask for less, or raise the action\'s timeout in config',
    );
  });

  it('above execution.timeout for an action without its own → invalid_request', () => {
    expect(
      refused(resolve({ action: 'short_word', params: { word: 'hi' }, timeoutMs: 30_001 })).rejection.code,
    ).toBe('invalid_request');
  });
});

describe('resolveRequest: which action', () => {
  it.each(['nope', 'constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'unknown action %j → unknown_action listing the known ones',
    (name) => {
      const r = refused(resolve({ action: name }));
      expect(r.rejection.code).toBe('unknown_action');
      expect(r.action).toBe(name);
      expect(r.rejection.error).toContain(`no action "${name}"`);
      expect(r.rejection.error).toContain(
        'known actions: apply_updates, backup, echo, join, journal, restart_service, scale, short_word',
      );
    },
  );

  it('no configured actions says so', () => {
    const r = resolveRequest(req({ action: 'x' }), {}, defaults);
    expect(!r.ok && r.rejection.error).toMatch(/\(none configured\)/);
  });

  it('neither action nor command → invalid_request', () => {
    expect(refused(resolve({})).rejection.code).toBe('invalid_request');
  });
});

describe('validateParams', () => {
  const specs = config.actions.journal!.params;
  const word = config.actions.short_word!.params;
  const scale = config.actions.scale!.params;

  it.each<[string, Record<string, unknown>, Record<string, string>]>([
    ['defaults only', { unit: 'ssh' }, { unit: 'ssh', lines: '50', format: 'short' }],
    ['JSON integer', { unit: 'ssh', lines: 200 }, { unit: 'ssh', lines: '200', format: 'short' }],
    ['decimal string', { unit: 'ssh', lines: '200' }, { unit: 'ssh', lines: '200', format: 'short' }],
    [
      'leading zeros are normalised',
      { unit: 'ssh', lines: '007' },
      { unit: 'ssh', lines: '7', format: 'short' },
    ],
    ['min', { unit: 'ssh', lines: 1 }, { unit: 'ssh', lines: '1', format: 'short' }],
    ['max', { unit: 'ssh', lines: '1000' }, { unit: 'ssh', lines: '1000', format: 'short' }],
    ['enum value', { unit: 'ssh', format: 'json' }, { unit: 'ssh', lines: '50', format: 'json' }],
  ])('%s', (_label, given, expected) => {
    expect(validateParams(specs, given)).toEqual(expected);
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      'unknown param',
      { unit: 'ssh', colour: 'red' },
      'unknown param(s) "colour" — this action takes: unit, lines, format',
    ],
    ['missing required', {}, 'param "unit" is required — add it to "params"'],
    ['string given a number', { unit: 5 }, 'param "unit" must be a JSON string'],
    ['pattern mismatch', { unit: 'SSH' }, 'param "unit" does not match its pattern ^[a-z0-9_.@-]{1,64}$'],
    ['integer below min', { unit: 'ssh', lines: 0 }, 'param "lines" is 0; the minimum is 1'],
    ['integer above max', { unit: 'ssh', lines: '1001' }, 'param "lines" is 1001; the maximum is 1000'],
    [
      'integer as fraction',
      { unit: 'ssh', lines: 1.5 },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    [
      'integer as fractional string',
      { unit: 'ssh', lines: '1.5' },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    [
      'integer with a plus',
      { unit: 'ssh', lines: '+5' },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    [
      'integer with blanks',
      { unit: 'ssh', lines: ' 5' },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    [
      'integer in exponent form',
      { unit: 'ssh', lines: '1e3' },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    [
      'integer as boolean',
      { unit: 'ssh', lines: true },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    [
      'integer as empty string',
      { unit: 'ssh', lines: '' },
      'param "lines" must be a whole number (a JSON integer or a decimal string)',
    ],
    ['enum case differs', { unit: 'ssh', format: 'JSON' }, 'param "format" must be one of: short, json, cat'],
    ['enum given a number', { unit: 'ssh', format: 1 }, 'param "format" must be one of: short, json, cat'],
  ])('%s → %j', (_label, given, message) => {
    expect(validateParams(specs, given)).toBe(message);
  });

  it('max_length is enforced before the pattern', () => {
    expect(validateParams(word, { word: 'abcdefgh' })).toEqual({ word: 'abcdefgh' });
    expect(validateParams(word, { word: 'abcdefghi' })).toBe('param "word" is 9 characters; at most 8');
  });

  it('an inherited property name is an unknown param, not a lookup on Object.prototype', () => {
    expect(
      validateParams(word, JSON.parse('{"word":"ok","constructor":"x"}') as Record<string, unknown>),
    ).toMatch(/^unknown param\(s\) "constructor"/);
  });

  it('a negative integer is a valid value for validateParams (the argv check is separate)', () => {
    expect(validateParams(scale, { n: -5 })).toEqual({ n: '-5' });
  });

  it('a long unknown param name is truncated in the message', () => {
    const msg = validateParams(word, { ['k'.repeat(100)]: 1 }) as string;
    expect(msg).toContain(`"${'k'.repeat(40)}…"`);
    expect(msg.length).toBeLessThan(120);
  });
});

describe('resolveRequest: param rejections', () => {
  it.each<[string, string, Record<string, unknown>, RegExp]>([
    ['unknown', 'restart_service', { unit: 'nginx', now: true }, /unknown param\(s\) "now"/],
    ['missing', 'restart_service', {}, /param "unit" is required/],
    ['wrong type', 'journal', { unit: 'ssh', lines: 'many' }, /must be a whole number/],
    ['enum', 'journal', { unit: 'ssh', format: 'xml' }, /must be one of: short, json, cat/],
  ])('%s → invalid_params', (_label, action, params, message) => {
    const r = refused(resolve({ action, params }));
    expect(r.rejection.code).toBe('invalid_params');
    expect(r.action).toBe(action);
    expect(r.rejection.error).toMatch(message);
  });
});

describe('resolveRequest: option injection', () => {
  // docs/configuration.md § argv templates: an argv element that would begin with "-" because of a param's value is always rejected.
  it.each([
    ['-x', 'restart_service', { unit: '-x' }],
    ['--force', 'restart_service', { unit: '--force' }],
    ['a lone dash', 'restart_service', { unit: '-' }],
    ['a negative integer', 'scale', { n: -5 }],
    ['a negative decimal string', 'scale', { n: '-1' }],
    ['in a step', 'echo', { message: '--help' }],
  ])('%s → invalid_params saying values may not start with "-"', (_label, action, params) => {
    const r = refused(resolve({ action, params }));
    expect(r.rejection.code).toBe('invalid_params');
    expect(r.rejection.error).toMatch(
      /would make the argument ".*" begin with "-" \(an option\) — values may not start with "-"/,
    );
  });

  it.each([
    ['--unit={unit} with a value starting with "-"', { unit: '-x' }, '--unit=-x'],
    ['--unit={unit} with a plain value', { unit: 'ssh' }, '--unit=ssh'],
  ])('a template element that itself begins with "-": %s is fine', (_label, params, element) => {
    expect(job(resolve({ action: 'journal', params })).commands[0]![1]).toBe(element);
  });

  it('a literal "-" element of the template (apt-get -y) is fine', () => {
    expect(job(resolve({ action: 'apply_updates' })).commands[1]).toContain('-y');
  });

  it('a dash inside a value is fine', () => {
    expect(job(resolve({ action: 'restart_service', params: { unit: 'getty@tty-1' } })).commands[0]).toEqual([
      'systemctl',
      'restart',
      'getty@tty-1',
    ]);
  });

  it('zero is fine for a negative-allowing integer', () => {
    expect(job(resolve({ action: 'scale', params: { n: 0 } })).commands[0]).toEqual(['scaler', '0']);
  });
});

describe('matchCommand', () => {
  it.each<[string, string | undefined, { action: string; params: Record<string, string> } | undefined]>([
    ['systemctl restart nginx', undefined, { action: 'restart_service', params: { unit: 'nginx' } }],
    ['journalctl -u ssh', undefined, { action: 'journal', params: { unit: 'ssh' } }],
    ['journalctl -u ssh -n 20', undefined, { action: 'journal', params: { unit: 'ssh', lines: '20' } }],
    ['journalctl -u ssh -o json', undefined, { action: 'journal', params: { unit: 'ssh', format: 'json' } }],
    ['echo hello world', undefined, { action: 'echo', params: { message: 'hello world' } }],
    ['systemctl restart nginx', 'restart_service', { action: 'restart_service', params: { unit: 'nginx' } }],
    ['systemctl restart nginx', 'journal', undefined],
    ['systemctl restart', undefined, undefined],
    ['systemctl  restart nginx', undefined, undefined],
    [' systemctl restart nginx', undefined, undefined],
    ['systemctl restart nginx ', undefined, undefined],
    ['xsystemctl restart nginx', undefined, undefined],
    ['apt-get update', undefined, undefined],
    ['', undefined, undefined],
  ])('%j (only %j) → %j', (command, only, expected) => {
    expect(matchCommand(command, config.actions, only)).toEqual(expected);
  });
});

describe('resolveRequest: raw commands', () => {
  it('a matching command becomes its action with the captured params', () => {
    const j = job(resolve({ command: 'systemctl restart nginx' }));
    expect(j.action).toBe('restart_service');
    expect(j.commands).toEqual([['systemctl', 'restart', 'nginx']]);
  });

  it('an optional group that did not match falls back to the default', () => {
    expect(job(resolve({ command: 'journalctl -u ssh' })).params).toEqual({
      unit: 'ssh',
      lines: '50',
      format: 'short',
    });
  });

  it('captures are validated like params', () => {
    const r = refused(resolve({ command: 'journalctl -u ssh -n 5000' }));
    expect(r.rejection.code).toBe('invalid_params');
    expect(r.rejection.error).toMatch(/maximum is 1000/);
  });

  it('a command that matches no pattern → not_whitelisted, saying only whitelisted shapes run', () => {
    const r = refused(resolve({ command: 'rm -rf /' }));
    expect(r.rejection.code).toBe('not_whitelisted');
    expect(r.action).toBeNull();
    expect(r.rejection.error).toMatch(
      /does not fully match any action's pattern — only whitelisted command shapes run/,
    );
  });

  it("with an action named, only that action's pattern is tried", () => {
    const r = refused(resolve({ action: 'journal', command: 'systemctl restart nginx' }));
    expect(r.rejection.code).toBe('not_whitelisted');
    expect(r.action).toBe('journal');
    expect(r.rejection.error).toMatch(/the pattern of action "journal"/);
  });

  it('an action without a pattern never takes raw commands', () => {
    expect(refused(resolve({ command: 'apt-get update' })).rejection.code).toBe('not_whitelisted');
    expect(refused(resolve({ action: 'apply_updates', command: 'apt-get update' })).rejection.code).toBe(
      'not_whitelisted',
    );
  });
});

// --- The injection corpus -----------------------------------------------------------

const CYRILLIC_NGINX = 'ngіnх'; // і U+0456, х U+0445
const TEN_KB = 'a'.repeat(10 * 1024);

/** Each entry: a hostile value, and whether a permissive pattern ([\s\S]*, max 4096) lets it through. */
const CORPUS: [label: string, value: string, permissive: 'accepted' | 'rejected'][] = [
  ['semicolon', 'nginx; id', 'accepted'],
  ['bare semicolon', ';', 'accepted'],
  ['and-and', 'nginx && id', 'accepted'],
  ['pipe', 'nginx | id', 'accepted'],
  ['command substitution', '$(id)', 'accepted'],
  ['backticks', '`id`', 'accepted'],
  ['variable', '$HOME', 'accepted'],
  ['redirect', 'x > /etc/passwd', 'accepted'],
  ['glob', '*', 'accepted'],
  ['quotes', '"a" \'b\'', 'accepted'],
  ['spaces that a shell would split', 'a b  c', 'accepted'],
  ['path traversal', '../../etc/passwd', 'accepted'],
  ['path traversal alone', '../', 'accepted'],
  ['Cyrillic look-alike', CYRILLIC_NGINX, 'accepted'],
  ['fullwidth semicolon', 'nginx；id', 'accepted'],
  ['zero-width space', 'ng\u200Binx', 'rejected'],
  ['right-to-left override', 'nginx\u202Ecod.exe', 'rejected'],
  ['newline', 'nginx\nid', 'rejected'],
  ['carriage return', 'nginx\rid', 'rejected'],
  ['trailing newline', 'nginx\n', 'rejected'],
  ['NUL', 'nginx\u0000id', 'rejected'],
  ['escape', '\u001b[2J', 'rejected'],
  ['DEL', 'nginx\u007f', 'rejected'],
  ['C1 control (CSI)', 'nginx\u009b2J', 'rejected'],
  ['C1 control (NEL)', 'nginx\u0085id', 'rejected'],
  ['leading dash', '-x', 'rejected'],
  ['leading double dash', '--force', 'rejected'],
  ['a 10 KB string', TEN_KB, 'rejected'],
  ['empty string', '', 'accepted'],
];

describe('injection corpus: params of a strict action', () => {
  it.each(CORPUS)('%s is rejected and yields no job', (_label, value) => {
    const r = resolve({ action: 'restart_service', params: { unit: value } });
    expect(r.ok).toBe(false);
    expect(refused(r).rejection.code).toBe('invalid_params');
  });
});

describe('injection corpus: raw commands for a strict action', () => {
  it.each(CORPUS)('%s is rejected and yields no job', (_label, value) => {
    const r = resolve({ command: `systemctl restart ${value}` });
    expect(r.ok).toBe(false);
    expect(['invalid_params', 'not_whitelisted']).toContain(refused(r).rejection.code);
  });

  it.each([
    ['prefix injection', '; systemctl restart nginx'],
    ['suffix injection', 'systemctl restart nginx; id'],
    ['second line', 'systemctl restart nginx\nrm -rf /'],
    ['second line first', 'rm -rf /\nsystemctl restart nginx'],
    ['trailing newline', 'systemctl restart nginx\n'],
    ['NUL in the middle', 'systemctl restart nginx\u0000 id'],
    ['fullwidth space', 'systemctl\u3000restart nginx'],
    ['Cyrillic executable', 'sуstemctl restart nginx'],
    ['empty', ''],
    ['10 KB', `systemctl restart ${TEN_KB}`],
  ])('whole-command %s is not whitelisted', (_label, command) => {
    const r = refused(resolve({ command }));
    expect(r.rejection.code).toBe('not_whitelisted');
  });
});

describe('injection corpus: a permissive pattern', () => {
  it.each(CORPUS)('param %s: rejected, or exactly one argv element', (_label, value, permissive) => {
    const r = resolve({ action: 'echo', params: { message: value } });
    if (permissive === 'rejected') {
      expect(refused(r).rejection.code).toBe('invalid_params');
    } else {
      // Never split, never joined with another element, byte for byte.
      expect(job(r).commands).toEqual([['echo', value]]);
    }
  });

  it.each(CORPUS)(
    'raw command with %s: rejected, or exactly one argv element',
    (_label, value, permissive) => {
      const r = resolve({ command: `echo ${value}` });
      if (permissive === 'rejected') {
        expect(['invalid_params', 'not_whitelisted']).toContain(refused(r).rejection.code);
      } else {
        expect(job(r).commands).toEqual([['echo', value]]);
      }
    },
  );
});

describe('injection corpus: end to end from an MQTT payload', () => {
  const fromPayload = (topicAction: string | undefined, body: unknown): { code: string } | Job => {
    const parsed = parseDelivery(
      { topicAction, payload: Buffer.from(JSON.stringify(body)), retained: false },
      0,
      () => 'gen-1',
    );
    if (!parsed.ok) return { code: parsed.rejection.code };
    const r = resolveRequest(parsed.request, config.actions, defaults);
    return r.ok ? r.job : { code: r.rejection.code };
  };

  it.each(CORPUS)('%s never yields a job for the strict action, by params or by command', (_label, value) => {
    for (const outcome of [
      fromPayload('restart_service', { params: { unit: value } }),
      fromPayload(undefined, { command: `systemctl restart ${value}` }),
      fromPayload('restart_service', { command: `systemctl restart ${value}` }),
    ]) {
      expect(outcome).toHaveProperty('code');
      expect(['invalid_params', 'not_whitelisted', 'invalid_request']).toContain(
        (outcome as { code: string }).code,
      );
    }
  });
});

describe('control characters from the config (found by test/unit/fuzz.test.ts)', () => {
  const ctl = parseConfig(
    String.raw`
actions:
  ctl:
    argv: [ctl, "{v}", "{m}"]
    params:
      v: { type: enum, values: [ok, "bad\nline"] }
      m: { type: string, pattern: "[\\s\\S]{0,8}", default: "a\u0007b" }
`,
    '/nonexistent/ctl.yaml',
    {},
  );

  it.each([
    ['an enum value with a newline', { v: 'bad\nline', m: 'x' }, 'v'],
    ['a default with a BEL', { v: 'ok' }, 'm'],
  ])('%s is rejected, never passed to the command', (_label, params, name) => {
    const r = refused(resolveRequest(req({ action: 'ctl', params }), ctl.actions, defaults));
    expect(r.rejection.code).toBe('invalid_params');
    expect(r.rejection.error).toContain(`param "${name}"`);
    expect(r.rejection.error).toMatch(/control character/);
  });

  it('a "__proto__" param from a request is an unknown param', () => {
    const parsed = parseDelivery(
      {
        topicAction: 'ctl',
        payload: Buffer.from('{"params":{"v":"ok","__proto__":{"m":"x"}}}'),
        retained: false,
      },
      0,
      () => 'g',
    );
    if (!parsed.ok) throw new Error(parsed.rejection.error);
    const r = refused(resolveRequest(parsed.request, ctl.actions, defaults));
    expect(r.rejection.code).toBe('invalid_params');
    expect(r.rejection.error).toMatch(/unknown param\(s\) "__proto__"/);
  });
});
