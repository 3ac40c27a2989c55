/**
 * Hostile input that once stopped the agent (docs/security.md § What the agent withstands): each case
 * here crashed or fooled the code before its fix.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { ParamStore } from '../../src/agent/params.js';
import { JsonStateFile } from '../../src/agent/state-file.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { parseDelivery, type ParseOutcome } from '../../src/core/request.js';
import { validateParams } from '../../src/core/resolve.js';
import { expandElement } from '../../src/core/template.js';
import type { ParamSpec } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';
import { until } from '../helpers/wait.js';

const deliver = (payload: string, topicAction?: string): ParseOutcome =>
  parseDelivery({ topicAction, payload: Buffer.from(payload), retained: false }, Date.now(), () => 'gen-1');

const nested = (depth: number, leaf: string): string => '['.repeat(depth) + leaf + ']'.repeat(depth);

describe('bounded JSON on the command topics', () => {
  it('the pen test: params and parameters both present and deeply nested → invalid_request, no stack overflow', () => {
    // ~24 KB: two arrays nested thousands deep that differ only at the bottom.
    const payload = `{"action":"x","params":{"a":${nested(6000, '1')}},"parameters":{"a":${nested(6000, '2')}}}`;
    expect(payload.length).toBeLessThan(64 * 1024);
    const out = deliver(payload);
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.rejection.code).toBe('invalid_request');
      expect(out.rejection.error).toMatch(/nested more than 32 levels deep/);
    }
  });

  it('nesting is refused before JSON.parse, at 33 levels; 32 are fine', () => {
    const deep = deliver(`{"action":"x","params":{"a":${nested(31, '1')}}}`);
    expect(deep.ok).toBe(false);
    if (!deep.ok) expect(deep.rejection.error).toMatch(/nested more than 32 levels deep/);
    const ok = deliver(`{"action":"x","params":{"a":${nested(30, '1')}}}`);
    expect(ok.ok).toBe(true);
  });

  it('brackets inside strings do not count as nesting', () => {
    const out = deliver(JSON.stringify({ action: 'x', params: { a: '['.repeat(100) + '{"\\'.repeat(50) } }));
    expect(out.ok).toBe(true);
  });
});

describe('unknown param types fail closed', () => {
  it('a spec of a type the code does not know refuses the value instead of throwing', () => {
    const specs = { x: { type: 'regex' } } as unknown as Record<string, ParamSpec>;
    expect(validateParams(specs, { x: 'anything' })).toMatch(/param "x" has a type this agent does not know/);
  });
});

describe('control characters: bidi, zero-width and line separators are refused too', () => {
  const specs: Record<string, ParamSpec> = {
    name: { type: 'string', pattern: '[\\s\\S]*', max_length: 255 },
  };
  it.each([
    ['right-to-left override U+202E', 'abc\u202Etxt.exe'],
    ['left-to-right embedding U+202A', '\u202Aabc'],
    ['first strong isolate U+2068', 'a\u2068b'],
    ['pop directional isolate U+2069', 'a\u2069'],
    ['right-to-left mark U+200F', 'a\u200Fb'],
    ['Arabic letter mark U+061C', 'a\u061Cb'],
    ['zero-width space U+200B', 'sys\u200Btemd'],
    ['zero-width joiner U+200D', 'a\u200Db'],
    ['word joiner U+2060', 'a\u2060b'],
    ['byte-order mark U+FEFF', '\uFEFFabc'],
    ['line separator U+2028', 'a\u2028b'],
    ['paragraph separator U+2029', 'a\u2029b'],
  ])('%s', (_, value) => {
    expect(validateParams(specs, { name: value })).toMatch(/control character/);
  });
  it('ordinary non-ASCII text still passes', () => {
    expect(validateParams(specs, { name: 'Grüße, 日本' })).toEqual({ name: 'Grüße, 日本' });
  });
});

describe('YAML aliases in a config file', () => {
  it('a "billion laughs" file is one clear config error naming the line, not a stack trace', () => {
    const bomb = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
      'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
    ].join('\n');
    let err: unknown;
    try {
      parseConfig(bomb, '/test/bomb.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toMatch(/^\(yaml line 1, column \d+\)$/);
    expect(issues[0]?.message).toMatch(/anchor &a: anchors, aliases/);
    expect(issues[0]?.message).toMatch(/write the value out/);
  });

  it('a single harmless alias is refused the same way (a config never needs one)', () => {
    const yaml = 'host: &h pihole-1\nmqtt:\n  client_id: *h\n';
    expect(() => parseConfig(yaml, '/test/alias.yaml')).toThrow(ConfigError);
  });
});

/** A config with one button action whose enum and integer params HA shows. */
function paramConfig(stateDir: string) {
  return parseConfig(
    stringify({
      host: 'h1',
      state_dir: stateDir,
      actions: {
        backup: {
          argv: ['backup', '{mode}', '{keep}'],
          button: true,
          params: {
            mode: { type: 'enum', values: ['daily', 'weekly'] },
            keep: { type: 'integer', min: 1, max: 1000, default: 7 },
          },
        },
      },
    }),
    '/test/agent.yaml',
  );
}

function recorder() {
  const published: { topic: string; payload: string }[] = [];
  return {
    published,
    mqtt: {
      publish: (topic: string, payload: string) => {
        published.push({ topic, payload });
        return Promise.resolve();
      },
    },
  };
}

describe('param sets keyed by topic text', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each([
    'homelab/h1/param/constructor/x/set',
    'homelab/h1/param/__proto__/x/set',
    'homelab/h1/param/backup/constructor/set',
    'homelab/h1/param/backup/__proto__/set',
    'homelab/h1/param/backup/toString/set',
    'homelab/h1/param/hasOwnProperty/valueOf/set',
  ])('%s is ignored with a log line, never a crash or a write', (topic) => {
    const dir = tempDir();
    const { mqtt, published } = recorder();
    const store = started(new ParamStore(paramConfig(dir), mqtt, silentLogger()));
    const writes = vi.spyOn(JsonStateFile.prototype, 'write');
    expect(store.handleSet(topic, Buffer.from('weekly'), false)).toBe(true);
    expect(writes).not.toHaveBeenCalled();
    expect(published).toEqual([]);
    expect(store.pressParams('backup')).toEqual({ mode: 'daily', keep: '7' });
    expect(store.pressParams('constructor')).toEqual({});
    store.stop();
  });

  it('a flood of sets costs one write an interval, and the value published is the value in force', async () => {
    const dir = tempDir();
    const { mqtt, published } = recorder();
    const store = started(new ParamStore(paramConfig(dir), mqtt, silentLogger()));
    const writes = vi.spyOn(JsonStateFile.prototype, 'write');
    for (let i = 0; i < 2000; i++)
      store.handleSet('homelab/h1/param/backup/keep/set', Buffer.from(String((i % 1000) + 1)), false);
    // The burst is bounded: most of the flood is dropped before it costs anything.
    expect(published.length).toBeLessThanOrEqual(50);
    expect(writes.mock.calls.length).toBeLessThanOrEqual(1);
    const inForce = store.pressParams('backup').keep;
    expect(published.at(-1)?.payload).toBe(inForce);
    const file = path.join(dir, 'params.json');
    await until(() => writes.mock.calls.length === 1, 10_000, 'the coalesced write of params.json');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ backup: { mode: 'daily', keep: inForce } });
    store.stop();
    expect(writes.mock.calls.length).toBe(1);
  });

  it('stop() flushes a pending write at once', () => {
    const dir = tempDir();
    const store = started(new ParamStore(paramConfig(dir), recorder().mqtt, silentLogger()));
    store.handleSet('homelab/h1/param/backup/mode/set', Buffer.from('weekly'), false);
    store.stop();
    const saved = JSON.parse(readFileSync(path.join(dir, 'params.json'), 'utf8')) as unknown;
    expect(saved).toEqual({ backup: { mode: 'weekly', keep: '7' } });
  });
});

describe('names that Object.prototype also has', () => {
  it('an argv placeholder {constructor} must be declared like any other param', () => {
    const yaml = stringify({ host: 'h1', actions: { a: { argv: ['echo', '{constructor}'] } } });
    expect(() => parseConfig(yaml, '/test/agent.yaml')).toThrow(/\{constructor\} is not a declared param/);
  });

  it('an undeclared placeholder never expands to an inherited property', () => {
    expect(expandElement('x{constructor}y{tostring}', {})).toBe('x{constructor}y{tostring}');
  });
});

/** Built and started, as the agent does: the constructor reads nothing. */
function started<T extends { start(): void }>(part: T): T {
  part.start();
  return part;
}
