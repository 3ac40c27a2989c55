/**
 * Names Home Assistant would turn into one entity id are refused at load (config/entity-ids.ts), and a
 * host id HA shows like another valid host's is a check-config warning (docs/home-assistant.md § Entity
 * ids). Near misses — names that differ in more than "_" and "-", or entities of different domains —
 * load.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { exampleConfigPath, parseConfig } from '../../src/config/load.js';
import { configWarnings } from '../../src/cli/check-config.js';
import { buildDiscovery } from '../../src/core/discovery.js';
import { ConfigError, type ConfigIssue } from '../../src/errors.js';
import { VERSION } from '../../src/version.js';

const parse = (yaml: string) => parseConfig(yaml, '/tmp/agent.yaml', {});

function issuesOf(yaml: string): ConfigIssue[] {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  return [];
}

const action = (name: string) => `  ${name}:\n    argv: ['true']\n`;
/** A button action with one enum param, which HA shows as a select. */
const button = (name: string, param: string) =>
  `  ${name}:\n    argv: [echo, '{${param}}']\n    button: true\n    params:\n      ${param}: {type: enum, values: [a, b], default: a}\n`;

describe('entity ids that HA would make one', () => {
  it.each([
    [
      'actions a__b and a_b',
      `host: pi\nactions:\n${action('a_b')}${action('a__b')}`,
      'actions.a__b',
      /^action a__b would get the Home Assistant entity id sensor\.pi_stats_a_b, which action a_b already gets: .* rename one of the two/,
    ],
    [
      'a trailing "_": actions x_ and x',
      `host: pi\nactions:\n${action('x')}${action('x_')}`,
      'actions.x_',
      /^action x_ would get the Home Assistant entity id sensor\.pi_stats_x, which action x already gets/,
    ],
    [
      'params x.y_z and x_y.z',
      `host: pi\nactions:\n${button('x', 'y_z')}${button('x_y', 'z')}`,
      'actions.x_y.params.z',
      /^param z of action x_y would get the Home Assistant entity id select\.pi_param_x_y_z, which param y_z of action x already gets/,
    ],
    [
      'probes p__q and p_q',
      `host: pi\nprobes:\n  p_q: {type: tcp, host: 127.0.0.1, port: 22}\n  p__q: {type: tcp, host: 127.0.0.1, port: 22}\n`,
      'probes.p__q',
      /^probe p__q would get the Home Assistant entity id binary_sensor\.pi_probe_p_q, which probe p_q already gets/,
    ],
  ])('%s: one refusal, at the second name, naming both and the fix', (_label, yaml, path, message) => {
    const issues = issuesOf(yaml);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe(path);
    expect(issues[0]!.message).toMatch(message);
  });

  it.each([
    ['actions that differ in more than "_"', `host: pi\nactions:\n${action('ab')}${action('a_b')}`],
    [
      // probe p_latency is a binary_sensor; probe p's latency reading is a sensor: two domains, two ids.
      'a probe named like another probe’s latency reading',
      `host: pi\nprobes:\n  p: {type: ping, host: 127.0.0.1}\n  p_latency: {type: ping, host: 127.0.0.1}\n`,
    ],
    [
      'a clash with discovery off (HA sees no entity)',
      `host: pi\ndiscovery: {enabled: false}\nactions:\n${action('a_b')}${action('a__b')}`,
    ],
  ])('%s: loads', (_label, yaml) => {
    expect(issuesOf(yaml)).toEqual([]);
  });

  it('every config that loads gives each entity its own entity id (the check and discovery agree)', () => {
    const c = parse(
      `host: pi-1\nactions:\n${button('a_b', 'c')}${button('a_x', 'b_c')}${action('ab')}\nprobes:\n  p: {type: ping, host: 127.0.0.1}\n  p_latency: {type: ping, host: 127.0.0.1}\n`,
    );
    const msgs = buildDiscovery({
      ...c,
      prefix: c.mqtt.prefix,
      discoveryPrefix: c.discovery.prefix,
      version: VERSION,
    });
    const ids = msgs.map((m) => m.payload.default_entity_id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('check-config: a host HA shows like another host', () => {
  it.each([
    ['nas-', 'nas', 'nas'],
    ['a--b', 'a_b', 'a-b'],
    ['a__b', 'a_b', 'a_b'],
    ['x_-y_', 'x_y', 'x_y'],
  ])('host %s: shown as %s, prefer %s', (host, slug, plain) => {
    const warnings = configWarnings(parse(`host: ${host}\n`));
    expect(warnings).toEqual([
      `host: "${host}" shows in Home Assistant as ${slug} (sensor.${slug}_uptime …), as a host "${plain}" would: two such hosts would share their entity ids — prefer host: ${plain}`,
    ]);
  });

  it.each(['nas', 'pihole-1', 'a_b', 'a-b-c', 'x0'])('host %s: no warning', (host) => {
    expect(configWarnings(parse(`host: ${host}\n`))).toEqual([]);
  });

  it('no warning with discovery off', () => {
    expect(configWarnings(parse(`host: nas-\ndiscovery: {enabled: false}\n`))).toEqual([]);
  });
});

describe('check-config: two entities HA shows under one name', () => {
  it('a button named like a fixed sensor: the configured one is named, with the fix', () => {
    const c = parse(
      `host: vm\nactions:\n  uptime:\n    argv: [uptime]\n    button: true\n    name: Uptime\n`,
    );
    expect(configWarnings(c)).toEqual([
      'actions.uptime: the button of action uptime is shown in Home Assistant as "vm Uptime", like the Uptime sensor: a dashboard or a voice assistant cannot tell them apart — give it another name (its name: key)',
    ]);
  });

  it('two configured names alike (case aside): the second is named', () => {
    const c = parse(
      `host: vm\nprobes:\n  web: {type: tcp, host: 127.0.0.1, port: 80, name: Web}\n  www: {type: tcp, host: 127.0.0.1, port: 443, name: web}\n`,
    );
    expect(configWarnings(c)).toEqual([
      'probes.www: the binary_sensor of probe www is shown in Home Assistant as "vm web", like the binary_sensor of probe web: a dashboard or a voice assistant cannot tell them apart — give it another name (its name: key)',
    ]);
  });

  it('the shipped example config names every entity apart', () => {
    expect(configWarnings(parse(readFileSync(exampleConfigPath(), 'utf8')))).toEqual([]);
  });
});
