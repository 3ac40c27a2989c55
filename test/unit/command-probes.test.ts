/**
 * Command probes and switches as pure data (issue 20 items 1–2): the config's refusals with their
 * fixes, the reading of a command's output, and the HA entities — templates rendered by the real
 * Jinja where present, the switch's command by HA's own rules, measured against HA's limits.
 */
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import type { ProbeOf } from '../../src/config/probes.js';
import {
  commandReading,
  MAX_ATTRIBUTE_BYTES,
  scaled,
  type CommandRun,
} from '../../src/core/command-probes.js';
import { buildDiscovery, type DiscoveryMessage } from '../../src/core/discovery.js';
import { SWITCH_COMMAND_TEMPLATE } from '../../src/core/discovery-switches.js';
import { probeState } from '../../src/core/probes.js';
import { parseDelivery } from '../../src/core/request.js';
import { switchState } from '../../src/core/switches.js';
import { VERSION } from '../../src/version.js';
import { configIssues } from '../helpers/config-issues.js';
import { exampleWithSwitches } from '../helpers/example-switches.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { haveJinja, runJinja } from '../helpers/jinja.js';

const load = (yaml: string): Config => parseConfig(yaml, '/nonexistent/agent.yaml', {});
const issues = (yaml: string) =>
  configIssues(yaml, '/nonexistent/agent.yaml').map((i) => `${i.path}: ${i.message}`);

/** A systemd-unit switch, a temperature sensor, an enum, a JSON probe and a Pi-hole style match. */
const YAML = `host: pihole-1
actions:
  start_nginx: { argv: [systemctl, start, nginx.service], sudo: true }
  stop_nginx: { argv: [systemctl, stop, nginx.service], sudo: true }
  blocking_on: { argv: [pihole, enable] }
  blocking_off: { argv: [pihole, disable] }
probes:
  nginx_active: { type: command, argv: [systemctl, is-active, --quiet, nginx.service], parse: exit_code, device_class: running }
  cpu_temp:
    type: command
    argv: [cat, /sys/class/thermal/thermal_zone0/temp]
    parse: number
    scale: 0.001
    precision: 1
    unit: °C
    device_class: temperature
    state_class: measurement
  mode: { type: command, argv: [tool, mode], parse: enum, options: [eco, boost] }
  ups: { type: command, argv: [ups-status, --json], parse: json, value_key: charge, unit: "%", device_class: battery }
  blocking: { type: command, argv: [pihole, status], parse: match, pattern: "blocking is enabled" }
switches:
  nginx: { turn_on: start_nginx, turn_off: stop_nginx, probe: nginx_active, name: Nginx }
  blocking: { turn_on: blocking_on, turn_off: blocking_off, probe: blocking }
`;
const config = load(YAML);
const build = (c: Config): DiscoveryMessage[] =>
  buildDiscovery({
    host: c.host,
    prefix: c.mqtt.prefix,
    discoveryPrefix: c.discovery.prefix,
    version: VERSION,
    actions: c.actions,
    probes: c.probes,
    switches: c.switches,
  });
const byTopic = new Map(build(config).map((m) => [m.topic, m.payload]));
const probe = (name: string) => config.probes[name] as ProbeOf<'command'>;

describe('config: what a command probe and a switch may say', () => {
  it('the example shapes load, with the defaults of every probe', () => {
    expect(probe('cpu_temp')).toMatchObject({ interval: 60_000, timeout: 5000, env: {}, scale: 0.001 });
    expect(config.switches.nginx).toEqual({
      turn_on: 'start_nginx',
      turn_off: 'stop_nginx',
      probe: 'nginx_active',
      name: 'Nginx',
    });
  });

  it.each([
    [
      'a key of another parse kind',
      'p: { type: command, argv: [x], parse: enum, options: [a], unit: °C }',
      /probes\.p\.unit: does not apply to parse: enum — remove it, or use a parse kind it fits \(number or json\)/,
    ],
    [
      'enum without options',
      'p: { type: command, argv: [x], parse: enum }',
      /probes\.p\.options: parse: enum needs options/,
    ],
    [
      'match without pattern',
      'p: { type: command, argv: [x], parse: match }',
      /probes\.p\.pattern: parse: match needs pattern/,
    ],
    [
      'a device class HA does not know',
      'p: { type: command, argv: [x], parse: number, device_class: temprature }',
      /probes\.p\.device_class: is not one Home Assistant knows here — use one of: temperature/,
    ],
    [
      'a sensor class on a binary reading',
      'p: { type: command, argv: [x], parse: exit_code, device_class: temperature }',
      /use one of: connectivity, running/,
    ],
    [
      'a placeholder',
      'p: { type: command, argv: [cat, "{file}"], parse: number }',
      /probes\.p\.argv\.1: a probe takes no params/,
    ],
    ['no parse', 'p: { type: command, argv: [x] }', /probes\.p\.parse: must be one of/],
    [
      'an option over 255 characters',
      `p: { type: command, argv: [x], parse: enum, options: [${'x'.repeat(256)}] }`,
      /at most 255 characters/,
    ],
  ])('refuses %s, saying how to fix it', (_l, line, want) => {
    expect(issues(`host: h1\nprobes:\n  ${line}\n`).join('\n')).toMatch(want);
  });

  const SW = (sw: string, extra = '') => `host: h1
actions:
  on: { argv: ["true"] }
  off: { argv: ["false"] }
  needs: { argv: [echo, "{v}"], params: { v: { type: string, pattern: "^[a-z]+$" } } }
probes:
  state: { type: command, argv: ["true"], parse: exit_code }
  temp: { type: command, argv: [cat, t], parse: number }
  svc: { type: service, unit: nginx }
${extra}switches:
  s: ${sw}
`;
  it.each([
    [
      'an action that does not exist',
      '{ turn_on: start, turn_off: off, probe: state }',
      /switches\.s\.turn_on: names no action — add an action start under actions:/,
    ],
    [
      'a probe that does not exist',
      '{ turn_on: on, turn_off: off, probe: nope }',
      /switches\.s\.probe: names no probe — add a probe nope under probes: \(type: command, parse: exit_code/,
    ],
    [
      'a probe of another type',
      '{ turn_on: on, turn_off: off, probe: svc }',
      /switches\.s\.probe: probe svc has type: service, which reads no on\/off state — a switch needs a command probe with parse: exit_code/,
    ],
    [
      'a probe that reads a number',
      '{ turn_on: on, turn_off: off, probe: temp }',
      /probe temp has parse: number, which reads no on\/off state/,
    ],
    [
      'one action for both',
      '{ turn_on: on, turn_off: on, probe: state }',
      /switches\.s\.turn_off: is the same action as turn_on \(on\)/,
    ],
    [
      'an action whose param has no default',
      '{ turn_on: needs, turn_off: off, probe: state }',
      /switches\.s\.turn_on: action needs has param "v" without a default, and a switch sends no params/,
    ],
    ['an unknown key', '{ turn_on: on, turn_off: off, probe: state, on: x }', /switches\.s\.on: unknown key/],
    [
      'a bad device class',
      '{ turn_on: on, turn_off: off, probe: state, device_class: light }',
      /switches\.s\.device_class: must be one of "switch", "outlet"/,
    ],
  ])('a switch: refuses %s', (_l, sw, want) => {
    expect(issues(SW(sw)).join('\n')).toMatch(want);
  });

  it('a switch on a command probe with parse exit_code loads', () => {
    expect(load(SW('{ turn_on: on, turn_off: off, probe: state }')).switches.s?.probe).toBe('state');
  });
});

describe('reading the output', () => {
  const run = (over: Partial<CommandRun>): CommandRun => ({
    status: 'succeeded',
    exit_code: 0,
    stdout: '',
    stderr: '',
    stdout_truncated: false,
    ...over,
  });
  const failed = (code: number, stderr = '') =>
    run({ status: 'failed', exit_code: code, stderr, error_code: 'exit_nonzero', error: 'x' });

  it.each([
    ['millidegrees scaled to one decimal', 'cpu_temp', run({ stdout: '45312\n' }), true, 45.3],
    ['a number after blank lines', 'cpu_temp', run({ stdout: '\n  51000 \n' }), true, 51],
    ['not a number', 'cpu_temp', run({ stdout: 'hot\n' }), false, null],
    ['a number with junk after it', 'cpu_temp', run({ stdout: '45 C\n' }), false, null],
    ['an option', 'mode', run({ stdout: 'eco\n' }), true, 'eco'],
    ['a word outside the options', 'mode', run({ stdout: 'turbo\n' }), false, null],
    ['exit 0 is on', 'nginx_active', run({}), true, true],
    ['exit 3 is off, not an error', 'nginx_active', failed(3), true, false],
    ['a match is on', 'blocking', run({ stdout: '[✓] Pi-hole blocking is enabled\n' }), true, true],
    ['no match is off', 'blocking', run({ stdout: '[✗] Pi-hole blocking is disabled\n' }), true, false],
    ['a nonzero exit of a match probe is an error', 'blocking', failed(1, 'FTL is not running'), false, null],
    ['json: the value key', 'ups', run({ stdout: '{"charge": 97, "status": "OL"}' }), true, 97],
    ['json: not an object', 'ups', run({ stdout: '[1]' }), false, null],
    ['json: cut by max_output', 'ups', run({ stdout: '{"charge": 9', stdout_truncated: true }), false, null],
    ['json: the value key missing', 'ups', run({ stdout: '{"status": "OL"}' }), false, null],
  ])('%s', (_l, name, r, ok, value) => {
    const reading = commandReading(probe(name), r);
    expect(reading.ok).toBe(ok);
    expect(reading.value).toBe(value);
    if (!ok) expect(reading.error).toMatch(/\w/);
  });

  it('errors say what to do', () => {
    expect(commandReading(probe('cpu_temp'), run({ stdout: 'hot' })).error).toBe(
      'the output "hot" is not a number — make the command print only the number',
    );
    expect(commandReading(probe('cpu_temp'), run({ status: 'timed_out', exit_code: -1 })).error).toBe(
      "cat did not finish within 5s and was killed — raise the probe's timeout, or make the command quicker",
    );
    expect(commandReading(probe('cpu_temp'), failed(1, 'cat: /sys/x: No such file\n')).error).toBe(
      'cat exited with code 1: cat: /sys/x: No such file',
    );
    const missing = run({
      status: 'failed',
      exit_code: 127,
      error_code: 'not_found',
      error: 'cat was not found',
    });
    expect(commandReading(probe('cpu_temp'), missing)).toMatchObject({
      ok: false,
      error: 'cat was not found',
      extra: { exit_code: null },
    });
  });

  it('json: the other keys are attributes, never `state`, and at most 4 KiB of them', () => {
    const r = commandReading(probe('ups'), run({ stdout: '{"charge": 97, "state": "x", "load": 12}' }));
    expect(r.extra?.attributes).toEqual({ load: 12 });
    const big = JSON.stringify({ charge: 1, blob: 'x'.repeat(MAX_ATTRIBUTE_BYTES) });
    expect(commandReading(probe('ups'), run({ stdout: big })).error).toMatch(
      /over the 4096 kept as attributes/,
    );
    const long = JSON.stringify({ charge: 'y'.repeat(256) });
    expect(commandReading(probe('ups'), run({ stdout: long })).error).toMatch(/at most 255/);
  });

  it('scaling never shows float noise', () => {
    expect(scaled(45300, 0.001)).toBe(45.3);
    expect(scaled(3, 0.1)).toBe(0.3);
    expect(scaled(12345, 0.001, 1)).toBe(12.3);
  });

  it('the state carries the configured unit and the exit code', () => {
    const s = probeState(
      'cpu_temp',
      'command',
      commandReading(probe('cpu_temp'), run({ stdout: '45000' })),
      3,
      new Date(0),
    );
    expect(s).toEqual({
      name: 'cpu_temp',
      type: 'command',
      ok: true,
      value: 45,
      unit: '°C',
      duration_ms: 3,
      checked_at: '1970-01-01T00:00:00.000Z',
      error: null,
      exit_code: 0,
    });
  });
});

describe('a switch state follows its probe only', () => {
  const sw = config.switches.nginx!;
  const reading = (ok: boolean, value: boolean | null) =>
    probeState(
      'nginx_active',
      'command',
      { ok, value, error: ok ? null : 'timed out', extra: { exit_code: null } },
      1,
      new Date(0),
    );
  it.each([
    ['on', reading(true, true), undefined, 'ON', null],
    ['off', reading(true, false), undefined, 'OFF', null],
    [
      'a failing probe: unknown, with why',
      reading(false, null),
      undefined,
      null,
      'the state probe nginx_active fails: timed out',
    ],
    [
      'a failed turn_on: still off, with the action error',
      reading(true, false),
      { id: 'r1', action: 'start_nginx', status: 'failed' as const, error: 'systemctl exited with code 5' },
      'OFF',
      'turning on (start_nginx) ended failed: systemctl exited with code 5',
    ],
    [
      'a refused turn_off',
      reading(true, true),
      { id: 'r2', action: 'stop_nginx', status: 'rejected' as const, error: 'execution is disabled' },
      'ON',
      'turning off (stop_nginx) ended rejected: execution is disabled',
    ],
    [
      'a turn_on that worked',
      reading(true, true),
      { id: 'r3', action: 'start_nginx', status: 'succeeded' as const, error: undefined },
      'ON',
      null,
    ],
  ])('%s', (_l, p, last, state, error) => {
    const s = switchState('nginx', sw, p, last);
    expect(s.state).toBe(state);
    expect(s.error).toBe(error);
    expect(s.last_action).toBe(last?.action ?? null);
  });
});

describe('HA entities', () => {
  it('the temperature probe is a temperature sensor in °C, on the host device', () => {
    expect(byTopic.get('homeassistant/sensor/pihole-1/probe_cpu_temp/config')).toMatchObject({
      name: 'Cpu temp',
      unique_id: 'homelab_cmd_pihole-1_probe_cpu_temp',
      default_entity_id: 'sensor.pihole_1_probe_cpu_temp',
      state_topic: 'homelab/pihole-1/probe/cpu_temp',
      value_template: '{{ value_json.value }}',
      device_class: 'temperature',
      state_class: 'measurement',
      unit_of_measurement: '°C',
      suggested_display_precision: 1,
      availability_topic: 'homelab/pihole-1/status',
      device: { identifiers: ['homelab_cmd_pihole-1'] },
    });
  });

  it('enum is an enum sensor listing its options; exit_code and match are binary sensors', () => {
    expect(byTopic.get('homeassistant/sensor/pihole-1/probe_mode/config')).toMatchObject({
      device_class: 'enum',
      options: ['eco', 'boost'],
    });
    expect(byTopic.get('homeassistant/binary_sensor/pihole-1/probe_nginx_active/config')).toMatchObject({
      device_class: 'running',
    });
    expect(byTopic.has('homeassistant/binary_sensor/pihole-1/probe_blocking/config')).toBe(true);
  });

  it('a switch: state from P/H/switch/NAME, optimistic false, commands on P/H/cmd', () => {
    expect(byTopic.get('homeassistant/switch/pihole-1/switch_nginx/config')).toMatchObject({
      name: 'Nginx',
      unique_id: 'homelab_cmd_pihole-1_switch_nginx',
      default_entity_id: 'switch.pihole_1_switch_nginx',
      command_topic: 'homelab/pihole-1/cmd',
      command_template: SWITCH_COMMAND_TEMPLATE,
      payload_on: 'start_nginx',
      payload_off: 'stop_nginx',
      state_topic: 'homelab/pihole-1/switch/nginx',
      value_template: '{{ value_json.state }}',
      state_on: 'ON',
      state_off: 'OFF',
      optimistic: false,
      qos: 1,
      retain: false,
      availability_topic: 'homelab/pihole-1/status',
    });
  });

  it.each([
    ['ON', 'start_nginx'],
    ['OFF', 'stop_nginx'],
  ])(
    'switching %s sends a stamped request for %s that the agent accepts now and expires after 60 s',
    (_l, action) => {
      const body = byTopic.get('homeassistant/switch/pihole-1/switch_nginx/config')!;
      const value = String(_l === 'ON' ? body.payload_on : body.payload_off);
      const nowMs = 1_765_090_800_123;
      const text = renderCommandTemplate(String(body.command_template), { value, nowMs });
      expect(JSON.parse(text)).toEqual({ action, ts: nowMs, ttl: 60 });
      const deliver = (at: number) =>
        parseDelivery(
          { topicAction: undefined, payload: Buffer.from(text), retained: false },
          at,
          () => 'gen',
        );
      const now = deliver(nowMs + 1000);
      expect(now.ok && now.request.action).toBe(action);
      const late = deliver(nowMs + 61_000);
      expect(!late.ok && late.rejection.code).toBe('expired');
    },
  );
});

/** Renders each template with value_json = value in HA's sandbox; [output, bytes of it as the recorder stores it]. */
function render(template: string, values: unknown[]): string[] {
  const script = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
data = json.load(sys.stdin)
print(json.dumps([env.from_string(data["template"]).render(value_json=v) for v in data["values"]]))
`;
  return runJinja<string[]>(script, { template, values });
}

describe.skipIf(!haveJinja)('templates as HA renders them', () => {
  const body = (t: string) => byTopic.get(t)!;
  it('binary sensor: ON, OFF, and None (unknown) while the probe fails', () => {
    const b = body('homeassistant/binary_sensor/pihole-1/probe_nginx_active/config');
    expect(render(String(b.value_template), [{ value: true }, { value: false }, { value: null }])).toEqual([
      'ON',
      'OFF',
      'None',
    ]);
  });

  it('sensor: the number, and None while failing; a switch: ON, OFF, None', () => {
    const s = body('homeassistant/sensor/pihole-1/probe_cpu_temp/config');
    expect(render(String(s.value_template), [{ value: 45.3 }, { value: null }])).toEqual(['45.3', 'None']);
    const sw = body('homeassistant/switch/pihole-1/switch_nginx/config');
    expect(render(String(sw.value_template), [{ state: 'ON' }, { state: 'OFF' }, { state: null }])).toEqual([
      'ON',
      'OFF',
      'None',
    ]);
  });

  it('json attributes: the object with error, never `state`, and under 16 KB for the largest allowed', () => {
    const j = body('homeassistant/sensor/pihole-1/probe_ups/config');
    // The largest the agent lets through: 4096 bytes of attributes, and a 200-character error of control characters.
    const attributes = { blob: '\u0001'.repeat(Math.floor((MAX_ATTRIBUTE_BYTES - 12) / 6)) };
    expect(Buffer.byteLength(JSON.stringify(attributes))).toBeLessThanOrEqual(MAX_ATTRIBUTE_BYTES);
    const [out, ok] = render(String(j.json_attributes_template), [
      { value: null, error: '\u0001'.repeat(200), attributes },
      { value: 97, error: null, attributes: { load: 12 } },
    ]);
    const parsed = JSON.parse(out!) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(['blob', 'error']);
    // Serialized as the recorder does (ensure_ascii off: a control character is 6 bytes).
    const bytes = Buffer.byteLength(JSON.stringify(parsed));
    // docs/home-assistant.md § Limits gives this figure.
    expect(bytes).toBe(5302);
    expect(JSON.parse(ok!)).toEqual({ load: 12, error: null });
    const sw = body('homeassistant/switch/pihole-1/switch_nginx/config');
    const [attrs] = render(String(sw.json_attributes_template), [
      switchState('nginx', config.switches.nginx!, undefined, undefined),
    ]);
    expect(JSON.parse(attrs!)).toEqual({ error: null, last_action: null, last_status: null });
  });
});

describe('the example config', () => {
  it('shows a systemd-unit switch, a container switch, Pi-hole blocking and a temperature sensor, all valid', () => {
    const c = load(stringify(exampleWithSwitches()));
    expect(Object.keys(c.switches)).toEqual(['nginx', 'pihole_container', 'blocking']);
    expect(c.switches.nginx).toMatchObject({
      turn_on: 'start_nginx',
      turn_off: 'stop_nginx',
      probe: 'nginx_active',
    });
    expect(c.actions.start_nginx).toMatchObject({
      argv: ['systemctl', 'start', 'nginx.service'],
      sudo: true,
    });
    expect(c.probes.cpu_temp).toMatchObject({
      type: 'command',
      argv: ['cat', '/sys/class/thermal/thermal_zone0/temp'],
      parse: 'number',
      unit: '°C',
      device_class: 'temperature',
    });
    expect(c.probes.pihole_running).toMatchObject({ sudo: true, parse: 'match' });
  });

  it('as shipped, it has none of them live (the demo of `homelab-cmd up` runs nothing of a real host)', () => {
    const shipped = load(readFileSync(new URL('../../config/agent.example.yaml', import.meta.url), 'utf8'));
    expect(shipped.switches).toEqual({});
    expect(Object.values(shipped.probes).filter((p) => p.type === 'command')).toEqual([]);
  });
});

describe('entity ids HA accepts for edge names (valid_entity_id: no "__", no "_" at either end)', () => {
  const HA_VALID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;
  it.each([
    ['nas-', 'web__ui_', 'switch.nas_switch_web_ui'],
    ['a--b', '0', 'switch.a_b_switch_0'],
  ])('host %j, switch %j → %s', (host, name, id) => {
    const c = load(`host: ${host}
actions:
  up: { argv: ["true"] }
  down: { argv: ["false"] }
probes:
  st__: { type: command, argv: ["true"], parse: exit_code }
switches:
  ${name}: { turn_on: up, turn_off: down, probe: st__ }
`);
    const ids = build(c).map((m) => String(m.payload.default_entity_id));
    for (const x of ids) expect(x).toMatch(HA_VALID);
    expect(ids).toContain(id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
