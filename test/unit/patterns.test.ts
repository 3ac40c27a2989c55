/**
 * User patterns run in linear time (RE2 through re2js): no value a sender chooses can stall the agent
 * (docs/security.md § What the agent withstands; docs/configuration.md § Patterns).
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { MAX_COMMAND_LENGTH } from '../../src/core/request.js';
import { matchCommand, validateParams } from '../../src/core/resolve.js';
import type { ActionConfig, ParamSpec } from '../../src/config/schema.js';

/** Catastrophic for a backtracking engine: nested quantifiers over the same characters. */
const EVIL = [
  '^([a-z0-9]+-?)+$',
  '^(a+)+$',
  '^(a|a)*$',
  '^(a|aa)+$',
  '^(\\w+\\s?)*$',
  // Linear for RE2, but in the program's size too: counted repeats of groups, near the size bound.
  '(?:[^x]*a){1,249}',
  '(?<w>(?:\\w+\\s*){1,64})',
];
/** Values that make a backtracker try every split: a long run of matching characters, then one that is not. */
const hostile = (n: number): string => `${'a'.repeat(Math.max(0, n - 1))}!`;

/** The slowest run over `lengths`, after one untimed pass (JIT warm-up is not the engine's cost). */
function worstMs(run: (value: string) => unknown, lengths: number[]): number {
  for (const n of lengths) run(hostile(n));
  let worst = 0;
  for (const n of lengths) {
    const start = performance.now();
    run(hostile(n));
    worst = Math.max(worst, performance.now() - start);
  }
  return worst;
}

const LENGTHS = [1, 2, 8, 16, 24, 31, 32, 33, 64, 255, 1024, 4096];

describe('hostile values against ReDoS patterns', () => {
  it.each(EVIL)('param pattern %s: every length up to max_length stays far below 50 ms', (pattern) => {
    const specs: Record<string, ParamSpec> = { v: { type: 'string', pattern, max_length: 4096 } };
    const worst = worstMs((v) => validateParams(specs, { v }), LENGTHS);
    // The bound is generous for a shared 2-core machine; the measured worst case is a few ms.
    console.log(`param pattern ${pattern}: worst ${worst.toFixed(2)} ms over lengths up to 4096`);
    expect(worst).toBeLessThan(250);
  });

  it('the pen test: ^([a-z0-9]+-?)+$ with the 33-character value (104 s before) is refused at once', () => {
    const specs: Record<string, ParamSpec> = {
      v: { type: 'string', pattern: '^([a-z0-9]+-?)+$', max_length: 255 },
    };
    const start = performance.now();
    expect(validateParams(specs, { v: `${'a'.repeat(32)}!` })).toMatch(/does not match its pattern/);
    expect(performance.now() - start).toBeLessThan(250);
  });

  it('a raw command of the maximum length against every action pattern stays far below 50 ms', () => {
    const actions = Object.fromEntries(
      EVIL.map((p, i) => [
        `a${i}`,
        { argv: ['x'], params: {}, pattern: `run ${p.replace(/^\^|\$$/g, '')}` } as unknown as ActionConfig,
      ]),
    );
    const worst = worstMs(
      (v) => matchCommand(`run ${v}`.slice(0, MAX_COMMAND_LENGTH), actions),
      [...LENGTHS, MAX_COMMAND_LENGTH],
    );
    console.log(`raw command vs ${EVIL.length} evil action patterns: worst ${worst.toFixed(2)} ms`);
    expect(worst).toBeLessThan(250);
  });

  it('named captures of an action pattern still become params', () => {
    const actions = {
      restart: {
        argv: ['systemctl', 'restart', '{unit}'],
        params: {},
        pattern: '^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$',
      } as unknown as ActionConfig,
    };
    expect(matchCommand('systemctl restart nginx.service', actions)).toEqual({
      action: 'restart',
      params: { unit: 'nginx.service' },
    });
    expect(matchCommand('systemctl restart nginx.service; reboot', actions)).toBeUndefined();
  });
});

function configIssues(pattern: string, where: 'param' | 'action'): string {
  const action =
    where === 'param'
      ? { argv: ['echo', '{v}'], params: { v: { type: 'string', pattern } } }
      : {
          argv: ['echo', '{v}'],
          params: { v: { type: 'string', pattern: '[a-z]+' } },
          pattern: `echo (?<v>[a-z]+)${pattern}`,
        };
  try {
    parseConfig(stringify({ host: 'h1', actions: { a: action } }), '/test/agent.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    throw err;
  }
  return '';
}

describe('check-config refuses patterns that cannot be contained or run in linear time', () => {
  it.each([
    ['a backreference', '(a)\\1', /backreference/],
    ['a lookahead', '(?=a)a', /lookaround/],
    ['a lookbehind', '(?<!a)b', /lookaround/],
  ])('%s in a param pattern: refused with the fix', (_, pattern, why) => {
    const out = configIssues(pattern, 'param');
    expect(out).toMatch(/actions\.a\.params\.v\.pattern: /);
    expect(out).toMatch(why);
    expect(out).toMatch(/RE2/);
  });

  it('a pattern too large to match in bounded time (a counted repeat of a group) is refused', () => {
    // 0.9 s on a 4 KB command before this bound (the hostile review's (?:[^x]*y){1,1000}).
    expect(configIssues('(?:[^x]*y){1,1000}', 'param')).toMatch(
      /actions\.a\.params\.v\.pattern: .*too large to match in bounded time \(4003 RE2 instructions; at most 1000\)/,
    );
    expect(configIssues('^/var/log/[a-z0-9._/-]{1,200}$', 'param')).toBe('');
  });

  it.each(['a)|(b', '[a-z]+)|(.*', ')(', 'x)|.*|(y'])(
    'a pattern that closes the anchoring group (%s) is refused',
    (pattern) => {
      const out = configIssues(pattern, 'param');
      expect(out).toMatch(/actions\.a\.params\.v\.pattern: .*closes a group it never opened/);
    },
  );

  it('the same holds for an action pattern', () => {
    expect(configIssues(')|(.*', 'action')).toMatch(/actions\.a\.pattern: .*closes a group it never opened/);
  });

  it(')|( could never let a value through anchoring at run time either', () => {
    // Were it to reach the matcher (a config not checked), the value must still not match.
    const specs = { v: { type: 'string', pattern: '[a-z]+)|(.*', max_length: 255 } } as Record<
      string,
      ParamSpec
    >;
    expect(validateParams(specs, { v: 'abc; rm -rf /' })).toMatch(/pattern/);
  });

  it('ordinary patterns, named groups and classes are still accepted', () => {
    expect(configIssues('^[a-zA-Z0-9_.@-]{1,64}$', 'param')).toBe('');
    expect(configIssues('(?: -n (?<n>[0-9]+))?', 'action')).toMatch(
      /named group \(\?<n>…\) is not a declared param/,
    );
    expect(configIssues('', 'action')).toBe('');
  });
});
