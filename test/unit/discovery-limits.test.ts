/**
 * Home Assistant's limits on what discovery publishes (issue 20, docs/home-assistant.md): names as HA
 * shows them, explicit press payloads, attribute names HA keeps, enum values it can show, and the Last
 * result attributes under the recorder's 16 KB. Templates are rendered by the real Jinja where present.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import {
  ATTRIBUTE_OUTPUT_TAIL,
  buildDiscovery,
  LAST_RESULT_ATTRIBUTES,
  type DiscoveryMessage,
} from '../../src/core/discovery.js';
import { entityName, humanize } from '../../src/core/discovery-names.js';
import { probeEntities } from '../../src/core/discovery-probes.js';
import { makeResult } from '../../src/core/result.js';
import { VERSION } from '../../src/version.js';
import { configIssues } from '../helpers/config-issues.js';
import { haveJinja, runJinja } from '../helpers/jinja.js';

const load = (yaml: string): Config => parseConfig(yaml, '/nonexistent/agent.yaml', {});
const build = (c: Config): DiscoveryMessage[] =>
  buildDiscovery({
    host: c.host,
    prefix: c.mqtt.prefix,
    discoveryPrefix: c.discovery.prefix,
    version: VERSION,
    actions: c.actions,
    probes: c.probes,
  });

/** HA's recorder stores `{}` for attributes whose JSON is over this many bytes (recorder/const.py). */
const HA_MAX_ATTRIBUTES_BYTES = 16_384;

if (!haveJinja)
  console.warn(
    'SKIPPED: rendering the HA templates needs python3 with jinja2 (apt-get install python3-jinja2)',
  );

/**
 * Renders `template` with `value_json` = each value, parses the output as HA does (json_loads) and
 * serializes it as the recorder does (orjson: UTF-8, control characters as \u00XX, no spaces).
 * Returns [the attributes, their serialized size in bytes].
 */
function renderAttributes(template: string, values: unknown[]): [Record<string, unknown>, number][] {
  const script = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
data = json.load(sys.stdin)
out = []
for v in data["values"]:
    attrs = json.loads(env.from_string(data["template"]).render(value_json=v))
    out.append([attrs, len(json.dumps(attrs, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))])
print(json.dumps(out))
`;
  return runJinja<[Record<string, unknown>, number][]>(script, { template, values });
}

describe('names as HA shows them ("<device> <entity>")', () => {
  it.each([
    ['restart_dns', 'Restart dns'],
    ['a__b', 'A b'],
    ['_lead_and_trail_', 'Lead and trail'],
    ['x', 'X'],
  ])('humanize(%j) = %j: a run of separators is one space', (name, shown) => {
    expect(humanize(name)).toBe(shown);
  });

  it.each([
    ['pihole-1', 'pihole-1 Fail', 'Fail'],
    ['pihole-1', 'Pihole-1: restart DNS', 'Restart DNS'],
    ['pihole-1', 'pihole-1_fail', 'Fail'],
    ['pihole-1', 'pihole-10 Fail', 'pihole-10 Fail'], // another word, not the host
    ['pihole-1', 'pihole-1', 'pihole-1'], // nothing would be left
    ['nas', 'Nasty cleanup', 'Nasty cleanup'],
    ['vm', 'Uptime', 'Uptime'],
  ])('on host %s, %j is shown as %j', (host, name, shown) => {
    expect(entityName(host, name)).toBe(shown);
  });

  it('an action named after its host is not doubled on its button, param and stats entities', () => {
    const msgs = build(
      load(`host: pihole-1
actions:
  fail:
    argv: ['false', '{mode}']
    name: pihole-1 Fail
    button: true
    params: { mode: { type: enum, values: [a, b] } }
`),
    );
    const names = msgs.filter((m) => /(run|stats|param)_fail/.test(m.topic)).map((m) => m.payload.name);
    expect(names.sort()).toEqual(['Fail', 'Fail: Mode', 'Fail: p95 duration']);
  });
});

describe('explicit fields other controllers rely on', () => {
  const msgs = build(load('host: h1\nactions:\n  a: { argv: ["true"], button: true }\n'));
  it('every button names its payload_press (Domoticz and others send their own default otherwise)', () => {
    const buttons = msgs.filter((m) => m.topic.startsWith('homeassistant/button/'));
    // The action's button and the host's Cancel button.
    expect(buttons.length).toBe(2);
    for (const b of buttons) expect(b.payload.payload_press).toBe('PRESS');
  });
  it('origin names the software and its version; no support_url while package.json names no homepage', () => {
    for (const m of msgs) expect(m.payload.origin).toEqual({ name: 'homelab-cmd', sw_version: VERSION });
  });
});

describe('check-config refuses what HA cannot show', () => {
  it('an enum value over 255 characters, with how to fix it', () => {
    const found = configIssues(
      `host: h1\nactions:\n  a:\n    argv: [echo, '{v}']\n    params: { v: { type: enum, values: [ok, ${'x'.repeat(256)}] } }\n`,
      '/nonexistent/agent.yaml',
    );
    expect(found.map((i) => i.path)).toEqual(['actions.a.params.v.values.1']);
    expect(found[0]!.message).toMatch(/at most 255 characters.*shorten it/);
  });
  it('255 characters are accepted', () => {
    expect(() =>
      load(
        `host: h1\nactions:\n  a:\n    argv: [echo, '{v}']\n    params: { v: { type: enum, values: [${'x'.repeat(255)}] } }\n`,
      ),
    ).not.toThrow();
  });
});

describe.skipIf(!haveJinja)('attributes HA keeps', () => {
  it("the service probe's state word is `service_state`: HA drops an attribute named state", () => {
    const c = load('host: h1\nprobes:\n  web: { type: service, unit: nginx }\n');
    const [bin] = probeEntities('web', c.probes.web!, 'Web', 'homelab/h1/probe/web');
    const [[attrs]] = renderAttributes(String(bin!.body.json_attributes_template), [
      { name: 'web', type: 'service', ok: false, value: 'failed', error: 'nginx is failed' },
    ]) as [[Record<string, unknown>, number]];
    expect(attrs).toEqual({ error: 'nginx is failed', service_state: 'failed' });
    expect(attrs).not.toHaveProperty('state');
  });

  // max_output's default is 10,000 bytes per stream: at most 10,000 characters each. The worst
  // characters for the recorder: a control character serializes to 6 bytes, an emoji to 4.
  const MAX_OUTPUT = 10_000;
  const worst = (fill: string) =>
    makeResult(
      'h1',
      { id: 'i'.repeat(500), action: 'a'.repeat(63) },
      {
        status: 'failed',
        stdout: fill.repeat(MAX_OUTPUT),
        stderr: fill.repeat(MAX_OUTPUT),
        stdout_truncated: true,
        stderr_truncated: true,
        error: fill.repeat(MAX_OUTPUT),
        error_code: 'not_whitelisted',
        executed_at: new Date(0).toISOString(),
        completed_at: new Date(0).toISOString(),
        duration_ms: 2_147_483_647,
        note: fill.repeat(MAX_OUTPUT),
      },
    );
  const CASES: [string, ReturnType<typeof worst>][] = [
    ['ASCII', worst('x')],
    ['control characters', worst('\u0001')],
    ['quotes and backslashes', worst('"\\')],
    ['emoji', worst('😀')],
  ];

  it.each(CASES)('Last result of a worst-case %s result stays under 16 KB', (_label, result) => {
    // The whole result would not: HA would store {} and warn at every run.
    expect(Buffer.byteLength(JSON.stringify(result))).toBeGreaterThan(HA_MAX_ATTRIBUTES_BYTES);
    const [[attrs, bytes]] = renderAttributes(LAST_RESULT_ATTRIBUTES, [result]) as [
      [Record<string, unknown>, number],
    ];
    expect(bytes).toBeLessThan(HA_MAX_ATTRIBUTES_BYTES);
    expect([...String(attrs.stdout)].length).toBeLessThanOrEqual(ATTRIBUTE_OUTPUT_TAIL);
    expect(attrs).toMatchObject({ status: 'failed', stdout_truncated: true, error_code: 'not_whitelisted' });
  });

  it('a short result keeps its outputs whole and says nothing was cut', () => {
    const r = makeResult(
      'h1',
      { id: 'abc', action: 'uptime' },
      { status: 'succeeded', exit_code: 0, stdout: 'up 3 days\n' },
    );
    const [[attrs]] = renderAttributes(LAST_RESULT_ATTRIBUTES, [r]) as [[Record<string, unknown>, number]];
    expect(attrs).toMatchObject({
      id: 'abc',
      action: 'uptime',
      status: 'succeeded',
      exit_code: 0,
      stdout: 'up 3 days\n',
      stderr: '',
      stdout_truncated: false,
      stderr_truncated: false,
      error: '',
    });
  });
});

describe('entity ids HA accepts as published (valid_entity_id: no "__", no "_" at either end)', () => {
  const HA_VALID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;
  it.each([
    ['nas-', 'uptime: { argv: [uptime], button: true }', 'button.nas_run_uptime'],
    ['nas_', 'uptime: { argv: [uptime], button: true }', 'button.nas_run_uptime'],
    ['pihole-1', 'restart__dns_: { argv: ["true"], button: true }', 'button.pihole_1_run_restart_dns'],
    ['a--b', 'x: { argv: ["true"], button: true }', 'button.a_b_run_x'],
  ])('host %j, action %s → %s', (host, action, id) => {
    const msgs = build(load(`host: ${host}\nactions:\n  ${action}\n`));
    for (const m of msgs) expect(String(m.payload.default_entity_id)).toMatch(HA_VALID);
    expect(msgs.map((m) => m.payload.default_entity_id)).toContain(id);
  });
});
