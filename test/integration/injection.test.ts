/**
 * The injection corpus against a real agent, as params and as raw `command`
 * strings. The only whitelisted executable is a fake `systemctl` that leaves a
 * canary line; anything a shell would run (`touch`, `id`, …) would leave a file.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calls, fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';

const h = new Harness();
const host = 'inject';
let dir: string;
let canary: string;

beforeAll(async () => {
  await h.start();
  dir = tempDir();
  canary = path.join(dir, 'PWNED');
  const bin = fakeBin(dir, 'systemctl', 'echo "restarted $2"');
  await h.agent(
    host,
    {
      restart_service: {
        argv: ['systemctl', 'restart', '{unit}'],
        params: { unit: { type: 'string', pattern: '^[a-zA-Z0-9_.@-]{1,64}$' } },
        pattern: '^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$',
      },
      // A deliberately permissive pattern: even then a value is one argv element, never a shell word.
      note: {
        argv: ['systemctl', 'status', 'x{text}'],
        params: { text: { type: 'string', pattern: '^.{0,200}$' } },
      },
    },
    { binDir: bin },
  );
});
afterAll(() => h.stop());

const CORPUS: [string, string][] = [
  ['semicolon', 'nginx; touch PWNED'],
  ['and-and', 'nginx && touch PWNED'],
  ['pipe', 'nginx | touch PWNED'],
  ['command substitution', 'nginx$(touch PWNED)'],
  ['backticks', 'nginx`touch PWNED`'],
  ['newline', 'nginx\ntouch PWNED'],
  ['NUL', 'nginx\u0000touch'],
  ['path traversal', '../../bin/sh'],
  ['leading dash', '-H'],
  ['option', '--force'],
  ['10 KB', 'a'.repeat(10_240)],
  ['Cyrillic look-alike', 'ngіnх'],
  ['fullwidth semicolon', 'nginx；reboot'],
  ['empty', ''],
  ['space', 'nginx reboot'],
  ['glob', 'nginx*'],
  ['redirect', 'nginx>/etc/passwd'],
];

describe('injection corpus: every attempt is rejected and nothing runs', () => {
  it.each(CORPUS)('as a param: %s', async (_name, value) => {
    const before = calls(dir).length;
    const r = await h.request(host, { action: 'restart_service', params: { unit: value } });
    expect(r.status).toBe('rejected');
    expect(['invalid_params', 'invalid_request']).toContain(r.error_code);
    expect(calls(dir).length).toBe(before);
  });

  it.each(CORPUS)('as a raw command: %s', async (_name, value) => {
    const before = calls(dir).length;
    const r = await h.request(
      host,
      { command: `systemctl restart ${value}` },
      { topic: `homelab/${host}/cmd` },
    );
    expect(r.status).toBe('rejected');
    // No pattern match, an option-looking capture, or a command longer than 4096 characters.
    expect(['not_whitelisted', 'invalid_params', 'invalid_request']).toContain(r.error_code);
    expect(calls(dir).length).toBe(before);
  });

  it('no canary file was ever created anywhere a shell could have written it', () => {
    expect(existsSync(canary)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('PWNED'))).toEqual([]);
  });
});

describe('a permissive pattern still cannot reach a shell', () => {
  it.each([['nginx; touch PWNED'], ['$(touch PWNED)'], ['`touch PWNED`'], ['a b c']])(
    '%j lands as one argv element, verbatim',
    async (value) => {
      const before = calls(dir).length;
      const r = await h.request(host, { action: 'note', params: { text: value } });
      expect(r.status).toBe('succeeded');
      expect(calls(dir).slice(before)).toEqual([`systemctl status x${value}`]);
      // The fake systemctl echoes its second argument: the whole value came as that one argument.
      expect(r.stdout).toBe(`restarted x${value}\n`);
      expect(existsSync(canary)).toBe(false);
    },
  );
});
