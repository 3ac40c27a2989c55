import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exampleConfigPath, loadConfig, parseConfig, type Config } from '../../src/config/load.js';
import { defaultHostId } from '../../src/core/names.js';
import { ConfigError, type ConfigIssue } from '../../src/errors.js';

// Secrets are read relative to the config file: give each config a real directory.
const dir = mkdtempSync(path.join(os.tmpdir(), 'homelab-cmd-config-'));
const SOURCE = path.join(dir, 'agent.yaml');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

const parse = (yaml: string, env: NodeJS.ProcessEnv = {}): Config => parseConfig(yaml, SOURCE, env);

function issuesOf(yaml: string): ConfigIssue[] {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.code).toBe('config');
    expect(e.file).toBe(SOURCE);
    return e.issues;
  }
  throw new Error('expected a ConfigError');
}

/** Exactly one issue, at this path, with a message matching. */
function expectOnly(yaml: string, keyPath: string, message: string | RegExp): void {
  const issues = issuesOf(yaml);
  expect(issues).toHaveLength(1);
  expect(issues[0]!.path).toBe(keyPath);
  if (typeof message === 'string') expect(issues[0]!.message).toBe(message);
  else expect(issues[0]!.message).toMatch(message);
}

const UNKNOWN = 'unknown key — remove it, or fix its spelling (every key is listed in docs/configuration.md)';
const NOT_A_DURATION = (v: string) =>
  `"${v}" is not a duration — write seconds (30) or a number with ms, s, m or h (500ms, 30s, 30m, 2h)`;

describe('parseConfig: defaults', () => {
  const c = parse('');

  it.each<[string, (c: Config) => unknown, unknown]>([
    ['mqtt.url', (c) => c.mqtt.url, 'mqtt://127.0.0.1:1883'],
    ['mqtt.prefix', (c) => c.mqtt.prefix, 'homelab'],
    ['mqtt.keepalive (ms)', (c) => c.mqtt.keepalive, 30_000],
    ['mqtt.insecure', (c) => c.mqtt.insecure, false],
    ['mqtt.username', (c) => c.mqtt.username, undefined],
    ['mqtt.password', (c) => c.mqtt.password, undefined],
    ['heartbeat.interval (ms)', (c) => c.heartbeat.interval, 30_000],
    ['discovery.enabled', (c) => c.discovery.enabled, true],
    ['discovery.prefix', (c) => c.discovery.prefix, 'homeassistant'],
    ['execution.enabled (the secure default)', (c) => c.execution.enabled, false],
    ['execution.sudo', (c) => c.execution.sudo, false],
    ['execution.timeout (ms)', (c) => c.execution.timeout, 30_000],
    ['execution.max_output', (c) => c.execution.max_output, 10_000],
    ['execution.concurrency', (c) => c.execution.concurrency, 2],
    ['execution.queue', (c) => c.execution.queue, 32],
    ['execution.shutdown_grace (ms)', (c) => c.execution.shutdown_grace, 10_000],
    [
      'execution.path',
      (c) => c.execution.path,
      '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ],
    ['actions', (c) => c.actions, {}],
    ['broker.host', (c) => c.broker.host, '127.0.0.1'],
    ['broker.port', (c) => c.broker.port, 1883],
    ['broker.users', (c) => c.broker.users, []],
    ['source', (c) => c.source, SOURCE],
  ])('%s', (_label, get, expected) => {
    expect(get(c)).toEqual(expected);
  });

  it('host defaults to the OS hostname, made a valid host id', () => {
    expect(c.host).toBe(defaultHostId(os.hostname()));
    expect(c.host).toMatch(/^[a-z0-9][a-z0-9_-]{0,62}$/);
  });

  it.each([
    ['XDG_STATE_HOME wins', { XDG_STATE_HOME: '/xdg/state', HOME: '/home/u' }, '/xdg/state/homelab-cmd'],
    ['else ~/.local/state', { HOME: '/home/u' }, '/home/u/.local/state/homelab-cmd'],
  ])('state_dir: %s', (_label, env, expected) => {
    expect(parse('', env).state_dir).toBe(expected);
  });

  it('a relative state_dir is resolved against the config file', () => {
    expect(parse('state_dir: state').state_dir).toBe(path.join(dir, 'state'));
    expect(parse('state_dir: /var/lib/homelab-cmd').state_dir).toBe('/var/lib/homelab-cmd');
  });

  it('an empty or comment-only file, and an empty mapping, are all defaults', () => {
    for (const yaml of ['', '# nothing here\n', '{}']) expect(parse(yaml).mqtt.prefix).toBe('homelab');
  });

  it('action defaults: no params, no button, no env', () => {
    const a = parse('actions:\n  up:\n    argv: [uptime]\n').actions.up!;
    expect(a).toMatchObject({ argv: ['uptime'], params: {}, button: false, env: {} });
    expect(a.sudo).toBeUndefined();
    expect(a.timeout).toBeUndefined();
  });

  it('string param default max_length is 255', () => {
    const p = parse(
      'actions:\n  e:\n    argv: [echo, "{m}"]\n    params:\n      m: { type: string, pattern: "^.*$" }\n',
    ).actions.e!.params.m!;
    expect(p).toMatchObject({ type: 'string', max_length: 255 });
  });
});

describe('parseConfig: values are read', () => {
  it.each<[string, string, (c: Config) => unknown, unknown]>([
    ['durations in seconds', 'heartbeat: { interval: 15 }', (c) => c.heartbeat.interval, 15_000],
    [
      'durations with units',
      'execution: { timeout: 2m, shutdown_grace: 500ms }',
      (c) => [c.execution.timeout, c.execution.shutdown_grace],
      [120_000, 500],
    ],
    ['keepalive', 'mqtt: { keepalive: 1m }', (c) => c.mqtt.keepalive, 60_000],
    [
      'action timeout',
      'actions:\n  up:\n    argv: [uptime]\n    timeout: 2h\n',
      (c) => c.actions.up!.timeout,
      7_200_000,
    ],
    [
      'stagger',
      'actions:\n  up:\n    argv: [uptime]\n    stagger: { group: dns, interval: 30m }\n',
      (c) => c.actions.up!.stagger,
      { group: 'dns', interval: 1_800_000, settle: 2000, require_peers_online: false, max_hold: 3_600_000 },
    ],
    ['mqtts url', 'mqtt: { url: "mqtts://broker.lan:8883" }', (c) => c.mqtt.url, 'mqtts://broker.lan:8883'],
    ['prefix with levels', 'mqtt: { prefix: lab/cmds }', (c) => c.mqtt.prefix, 'lab/cmds'],
    ['inline password', 'mqtt: { username: a, password: s3cret }', (c) => c.mqtt.password, 's3cret'],
  ])('%s', (_label, yaml, get, expected) => {
    expect(get(parse(yaml))).toEqual(expected);
  });
});

describe('parseConfig: unknown keys', () => {
  it.each([
    ['root', 'hots: pihole-1', 'hots'],
    ['mqtt', 'mqtt: { urll: "mqtt://x" }', 'mqtt.urll'],
    ['heartbeat', 'heartbeat: { every: 30s }', 'heartbeat.every'],
    ['discovery', 'discovery: { enable: true }', 'discovery.enable'],
    ['execution', 'execution: { enable: true }', 'execution.enable'],
    ['broker', 'broker: { bind: 0.0.0.0 }', 'broker.bind'],
    ['action', 'actions:\n  up:\n    argv: [uptime]\n    shell: true\n', 'actions.up.shell'],
    [
      'param',
      'actions:\n  e:\n    argv: [echo, "{m}"]\n    params:\n      m: { type: string, pattern: "^a$", regex: x }\n',
      'actions.e.params.m.regex',
    ],
    [
      'stagger',
      'actions:\n  up:\n    argv: [uptime]\n    stagger: { group: dns, interval: 1m, jitter: 5s }\n',
      'actions.up.stagger.jitter',
    ],
    [
      'broker user',
      'broker:\n  users:\n    - { username: ha, password: x, role: controller, admin: true }\n',
      'broker.users.0.admin',
    ],
  ])('%s level: the key path is named', (_label, yaml, keyPath) => {
    expectOnly(yaml, keyPath, UNKNOWN);
  });

  it('several unknown keys at one level are named together', () => {
    expectOnly('mqtt: { a: 1, b: 2 }', 'mqtt.a, mqtt.b', UNKNOWN);
  });
});

describe('parseConfig: durations', () => {
  it.each([
    ['mqtt.keepalive', 'mqtt: { keepalive: 10x }', '10x'],
    ['heartbeat.interval', 'heartbeat: { interval: 5 minutes }', '5 minutes'],
    ['execution.timeout', 'execution: { timeout: -1 }', '-1'],
    ['execution.shutdown_grace', 'execution: { shutdown_grace: 1d }', '1d'],
    ['actions.up.timeout', 'actions:\n  up:\n    argv: [uptime]\n    timeout: soon\n', 'soon'],
    [
      'actions.up.stagger.interval',
      'actions:\n  up:\n    argv: [uptime]\n    stagger: { group: dns, interval: "" }\n',
      '',
    ],
  ])('%s: a bad duration names the key and shows how to write one', (keyPath, yaml, value) => {
    expectOnly(yaml, keyPath, NOT_A_DURATION(value));
  });

  it.each([
    ['heartbeat.interval', 'heartbeat: { interval: 0 }'],
    ['execution.timeout', 'execution: { timeout: 0s }'],
    ['actions.up.timeout', 'actions:\n  up:\n    argv: [uptime]\n    timeout: 0\n'],
    ['actions.up.timeout', 'actions:\n  up:\n    argv: [uptime]\n    timeout: 0.0001\n'],
  ])(
    '%s: a zero interval or timeout is refused (it would spin, or kill every command at once)',
    (keyPath, yaml) => {
      expectOnly(yaml, keyPath, /must be more than 0/);
    },
  );

  it('shutdown_grace may be 0 (stop without waiting)', () => {
    expect(parse('execution: { shutdown_grace: 0 }').execution.shutdown_grace).toBe(0);
  });

  it.each([
    ['too short', '500ms', '500ms'],
    ['too long', '20h', '20h'],
  ])('mqtt.keepalive %s → out of range, saying the range', (_label, value, shown) => {
    expectOnly(
      `mqtt: { keepalive: ${value} }`,
      'mqtt.keepalive',
      `${shown} is out of range — use 1s to 65535s`,
    );
  });
});

describe('parseConfig: actions', () => {
  const action = (body: string): string => `actions:\n  a:\n${body.replace(/^/gm, '    ')}\n`;

  it.each<[string, string, string, string | RegExp]>([
    [
      'bad pattern regex',
      action('argv: [uptime]\npattern: "(unclosed"'),
      'actions.a.pattern',
      /^does not compile as an RE2 pattern \(.*\) — fix the syntax; RE2 has no backreferences or lookaround/,
    ],
    [
      'bad param regex',
      action('argv: [echo, "{m}"]\nparams:\n  m: { type: string, pattern: "[a-" }'),
      'actions.a.params.m.pattern',
      /^does not compile as an RE2 pattern/,
    ],
    [
      'regex invalid only under the u flag',
      action('argv: [echo, "{m}"]\nparams:\n  m: { type: string, pattern: "\\\\q" }'),
      'actions.a.params.m.pattern',
      /^does not compile/,
    ],
    [
      'undeclared placeholder',
      action('argv: [echo, "{msg}"]'),
      'actions.a.argv.1',
      '{msg} is not a declared param — add it under params or remove it',
    ],
    [
      'undeclared placeholder in a step',
      action('steps: [[echo, ok], [echo, "x{who}"]]'),
      'actions.a.steps.1.1',
      '{who} is not a declared param — add it under params or remove it',
    ],
    [
      'unused param',
      action('argv: [uptime]\nparams:\n  m: { type: string, pattern: "^a$" }'),
      'actions.a.params.m',
      'param "m" is declared but no argv element uses {m} — use it or remove it',
    ],
    [
      'both argv and steps',
      action('argv: [uptime]\nsteps: [[uptime]]'),
      'actions.a',
      'give exactly one of argv (one command) or steps (commands run in order)',
    ],
    [
      'neither argv nor steps',
      action('name: Nothing'),
      'actions.a',
      'give exactly one of argv (one command) or steps (commands run in order)',
    ],
    ['empty argv', action('argv: []'), 'actions.a.argv', /give at least the executable/],
    [
      'empty argv element',
      action('argv: [echo, ""]'),
      'actions.a.argv.1',
      /an argv element may not be empty/,
    ],
    ['no steps', action('steps: []'), 'actions.a.steps', /give at least one step/],
    [
      'button with a param lacking a default',
      action('argv: [echo, "{m}"]\nbutton: true\nparams:\n  m: { type: string, pattern: "^a$" }'),
      'actions.a.button',
      'a button press sends no params, and param "m" has no default — give it a default, or set button: false',
    ],
    [
      'pattern group not a param',
      action('argv: [uptime]\npattern: "^uptime (?<x>a)$"'),
      'actions.a.pattern',
      'named group (?<x>…) is not a declared param — rename it to one of: (no params)',
    ],
    [
      'param without a pattern group',
      action('argv: [echo, "{m}"]\npattern: "^echo$"\nparams:\n  m: { type: string, pattern: "^a$" }'),
      'actions.a.pattern',
      'has no named group for param "m" — add (?<m>…) so a raw command can set it',
    ],
    [
      'string default not matching',
      action('argv: [echo, "{m}"]\nparams:\n  m: { type: string, pattern: "^[a-z]+$", default: ABC }'),
      'actions.a.params.m.default',
      '"ABC" does not match the param\'s pattern',
    ],
    [
      'string default starting with "-"',
      action('argv: [echo, "{m}"]\nparams:\n  m: { type: string, pattern: "^.*$", default: "-rf" }'),
      'actions.a.params.m.default',
      'a default may not begin with "-" (it would read as an option)',
    ],
    [
      'integer default below min',
      action('argv: [echo, "{n}"]\nparams:\n  n: { type: integer, min: 1, max: 9, default: 0 }'),
      'actions.a.params.n.default',
      '0 is outside min/max',
    ],
    [
      'integer default above max',
      action('argv: [echo, "{n}"]\nparams:\n  n: { type: integer, min: 1, max: 9, default: 10 }'),
      'actions.a.params.n.default',
      '10 is outside min/max',
    ],
    [
      'integer min above max',
      action('argv: [echo, "{n}"]\nparams:\n  n: { type: integer, min: 9, max: 1 }'),
      'actions.a.params.n',
      'min (9) is greater than max (1)',
    ],
    [
      'integer default not whole',
      action('argv: [echo, "{n}"]\nparams:\n  n: { type: integer, default: 1.5 }'),
      'actions.a.params.n.default',
      'expected int, got number 1.5 — change the value',
    ],
    [
      'enum default not a value',
      action('argv: [echo, "{f}"]\nparams:\n  f: { type: enum, values: [json, short], default: xml }'),
      'actions.a.params.f.default',
      '"xml" is not one of values (json, short)',
    ],
    [
      'enum without values',
      action('argv: [echo, "{f}"]\nparams:\n  f: { type: enum, values: [] }'),
      'actions.a.params.f.values',
      /list at least one value/,
    ],
    [
      'unknown param type',
      action('argv: [echo, "{f}"]\nparams:\n  f: { type: float }'),
      'actions.a.params.f.type',
      /needs type: string \(with pattern\), integer \(min, max\), enum \(values\) or path \(roots\)/,
    ],
    [
      'string param without pattern',
      action('argv: [echo, "{f}"]\nparams:\n  f: { type: string }'),
      'actions.a.params.f.pattern',
      'is required (string) — add it',
    ],
    [
      'bad param name',
      action(
        'argv: [echo, "{ok}"]\nparams:\n  ok: { type: string, pattern: "^a$" }\n  Bad: { type: string, pattern: "^a$" }',
      ),
      'actions.a.params.Bad',
      /param names must match/,
    ],
    [
      'bad stagger group',
      action('argv: [uptime]\nstagger: { group: DNS, interval: 1m }'),
      'actions.a.stagger.group',
      /must match/,
    ],
    [
      'bad device_class',
      action('argv: [uptime]\ndevice_class: reboot'),
      'actions.a.device_class',
      'must be one of "restart", "identify", "update" — got string "reboot"',
    ],
    [
      'bad env name',
      action('argv: [uptime]\nenv: { "A-B": x }'),
      'actions.a.env.A-B',
      /environment names are letters, digits and "_"/,
    ],
    [
      'button not a boolean',
      action('argv: [uptime]\nbutton: "yes"'),
      'actions.a.button',
      'expected boolean, got string "yes" — change the value',
    ],
  ])('%s', (_label, yaml, keyPath, message) => {
    expectOnly(yaml, keyPath, message);
  });

  it('a placeholder in the executable is refused, even when declared', () => {
    const issues = issuesOf(
      action('argv: ["{prog}", run]\nparams:\n  prog: { type: enum, values: [ls], default: ls }'),
    );
    expect(issues).toEqual([
      {
        path: 'actions.a.argv.0',
        message: 'the executable may not come from a param ({prog}) — name a fixed program',
      },
    ]);
  });

  it('a placeholder in a step executable is refused at that step', () => {
    const issues = issuesOf(
      action(
        'steps: [[echo, "{m}"], ["/usr/bin/{m}"]]\nparams:\n  m: { type: enum, values: [ls], default: ls }',
      ),
    );
    expect(issues).toEqual([
      {
        path: 'actions.a.steps.1.0',
        message: 'the executable may not come from a param ({m}) — name a fixed program',
      },
    ]);
  });

  it('a placeholder in an element that begins with "-" is fine ("--unit={unit}")', () => {
    const c = parse(
      action('argv: [journalctl, "--unit={unit}"]\nparams:\n  unit: { type: string, pattern: "^[a-z]+$" }'),
    );
    expect(c.actions.a!.argv).toEqual(['journalctl', '--unit={unit}']);
  });

  it('a button may have enum and integer params without defaults (HA shows them as select and number)', () => {
    const c = parse(
      action(
        'argv: [echo, "{f}", "{n}"]\nbutton: true\nparams:\n  f: { type: enum, values: [a, b] }\n  n: { type: integer, min: 1, max: 5 }',
      ),
    );
    expect(c.actions.a!.button).toBe(true);
  });

  it('a button whose params all have defaults is fine', () => {
    expect(
      parse(
        action(
          'argv: [echo, "{m}"]\nbutton: true\nparams:\n  m: { type: string, pattern: "^[a-z]+$", default: hi }',
        ),
      ).actions.a!.button,
    ).toBe(true);
  });

  it('a button reports every string param lacking a default', () => {
    const issues = issuesOf(
      action(
        'argv: [echo, "{a}", "{b}"]\nbutton: true\nparams:\n  a: { type: string, pattern: "^x$" }\n  b: { type: string, pattern: "^y$" }',
      ),
    );
    expect(issues.map((i) => i.path)).toEqual(['actions.a.button', 'actions.a.button']);
    expect(issues.map((i) => i.message)).toEqual([
      expect.stringContaining('param "a"'),
      expect.stringContaining('param "b"'),
    ]);
  });

  it('pattern groups and params that do not match are reported in both directions', () => {
    const issues = issuesOf(
      action(
        'argv: [echo, "{unit}"]\npattern: "^echo (?<name>.+)$"\nparams:\n  unit: { type: string, pattern: "^a$" }',
      ),
    );
    expect(issues).toEqual([
      {
        path: 'actions.a.pattern',
        message: 'named group (?<name>…) is not a declared param — rename it to one of: unit',
      },
      {
        path: 'actions.a.pattern',
        message: 'has no named group for param "unit" — add (?<unit>…) so a raw command can set it',
      },
    ]);
  });

  it.each(['Restart', 'has-dash', '_x'])('a bad action name %j names the key', (name) => {
    expectOnly(`actions:\n  ${name}:\n    argv: [uptime]\n`, `actions.${name}`, /action names must match/);
  });
});

describe('parseConfig: mqtt and broker', () => {
  it.each<[string, string, string, string | RegExp]>([
    [
      'bad url',
      'mqtt: { url: "http://broker" }',
      'mqtt.url',
      'must be a URL like mqtt://host:1883 or mqtts://host:8883',
    ],
    ['bad prefix', 'mqtt: { prefix: "homelab/#" }', 'mqtt.prefix', /no wildcards/],
    [
      'prefix with a trailing slash',
      'mqtt: { prefix: "homelab/" }',
      'mqtt.prefix',
      /no leading or trailing "\/"/,
    ],
    ['bad discovery prefix', 'discovery: { prefix: "+" }', 'discovery.prefix', /no wildcards/],
    [
      'bad host',
      'host: Pihole.local',
      'host',
      'must match ^[a-z0-9][a-z0-9_-]{0,62}$ — use lowercase letters, digits, "_" and "-"',
    ],
    [
      'cert without key',
      'mqtt: { cert_file: c.pem }',
      'mqtt.cert_file',
      'a client certificate needs both cert_file and key_file',
    ],
    [
      'password and password_file',
      'mqtt: { password: a, password_file: pw }',
      'mqtt.password_file',
      'give password or password_file, not both',
    ],
    [
      'relative execution.path',
      'execution: { path: "bin:/usr/bin" }',
      'execution.path',
      /must be absolute directories joined by ":"/,
    ],
    [
      'concurrency 0',
      'execution: { concurrency: 0 }',
      'execution.concurrency',
      /too small.*>=1 — change the value$/i,
    ],
    [
      'max_output negative',
      'execution: { max_output: -1 }',
      'execution.max_output',
      /too small.*>=0 — change the value$/i,
    ],
    [
      'queue not a number',
      'execution: { queue: lots }',
      'execution.queue',
      'expected number, got string "lots" — change the value',
    ],
    [
      'broker port too big',
      'broker: { port: 70000 }',
      'broker.port',
      /too big.*<=65535 — change the value$/i,
    ],
    [
      'user with both secrets',
      'broker:\n  users:\n    - { username: ha, password: a, password_file: pw, role: controller }\n',
      'broker.users.0',
      'give exactly one of password or password_file',
    ],
    [
      'user with no secret',
      'broker:\n  users:\n    - { username: ha, role: controller }\n',
      'broker.users.0',
      'give exactly one of password or password_file',
    ],
    [
      'agent user without host',
      'broker:\n  users:\n    - { username: agent-1, password: a, role: agent }\n',
      'broker.users.0.host',
      'an agent user is bound to one host — add host: <its host id>',
    ],
    [
      'bad role',
      'broker:\n  users:\n    - { username: x, password: a, role: admin }\n',
      'broker.users.0.role',
      'must be one of "agent", "controller" — got string "admin"',
    ],
    [
      'user without username',
      'broker:\n  users:\n    - { password: a, role: controller }\n',
      'broker.users.0.username',
      'is required (string) — add it',
    ],
    [
      'users not a list',
      'broker: { users: ha }',
      'broker.users',
      'expected array, got string "ha" — change the value',
    ],
  ])('%s', (_label, yaml, keyPath, message) => {
    expectOnly(yaml, keyPath, message);
  });

  it.each([
    ['mqtt.password', 'mqtt: { password: 123456 }'],
    [
      'broker.users.0.password',
      'broker:\n  users:\n    - { username: x, password: [hunter2], role: controller }\n',
    ],
  ])('a wrongly typed %s is reported without echoing the secret', (keyPath, yaml) => {
    const issues = issuesOf(yaml);
    expect(issues).toEqual([
      {
        path: keyPath,
        message: expect.stringMatching(/^expected string, got .*not shown.* — change the value$/),
      },
    ]);
    expect(JSON.stringify(issues)).not.toMatch(/123456|hunter2/);
  });

  it.each([
    ['equal', 'homelab', 'homelab'],
    ['discovery inside the topic prefix', 'homelab', 'homelab/ha'],
    ['topic prefix inside discovery', 'ha/homelab', 'ha'],
  ])(
    "a discovery prefix that overlaps the topic prefix (%s) is refused: it would widen an agent's ACL to other hosts",
    (_label, prefix, discovery) => {
      expectOnly(
        `mqtt: { prefix: ${prefix} }\ndiscovery: { prefix: ${discovery} }`,
        'discovery.prefix',
        /must not overlap mqtt\.prefix/,
      );
    },
  );

  it('prefixes that merely share leading characters are fine', () => {
    expect(parse('mqtt: { prefix: home }\ndiscovery: { prefix: homeassistant }').discovery.prefix).toBe(
      'homeassistant',
    );
  });

  it('duplicate usernames are refused at the second one', () => {
    const yaml =
      'broker:\n  users:\n    - { username: ha, password: a, role: controller }\n    - { username: agent-1, password: b, role: agent, host: h1 }\n    - { username: ha, password: c, role: controller }\n';
    expectOnly(yaml, 'broker.users.2.username', '"ha" is listed twice — usernames must be unique');
  });

  it('an agent user with a host is fine', () => {
    const c = parse(
      'broker:\n  users:\n    - { username: agent-1, password: b, role: agent, host: pihole-1 }\n',
    );
    expect(c.broker.users).toEqual([{ username: 'agent-1', password: 'b', role: 'agent', host: 'pihole-1' }]);
  });
});

describe('parseConfig: secret files', () => {
  it('reads password_file (relative to the config file), without its trailing newline', () => {
    write('mqtt.pw', 'from-file\n');
    const abs = write('agent.pw', 'agent-secret\r\n');
    const c = parse(
      `mqtt: { username: a, password_file: mqtt.pw }\nbroker:\n  users:\n    - { username: agent-1, password_file: ${abs}, role: agent, host: h1 }\n`,
    );
    expect(c.mqtt.password).toBe('from-file');
    expect(c.broker.users[0]!.password).toBe('agent-secret');
  });

  it('keeps inner whitespace and only one trailing newline off', () => {
    write('spaces.pw', ' a b \n\n');
    expect(parse('mqtt: { password_file: spaces.pw }').mqtt.password).toBe(' a b \n');
  });

  it('resolves ca_file, cert_file and key_file to absolute paths', () => {
    write('ca.pem', 'x');
    write('c.pem', 'x');
    write('k.pem', 'x');
    const c = parse('mqtt: { ca_file: ca.pem, cert_file: c.pem, key_file: k.pem }');
    expect([c.mqtt.ca_file, c.mqtt.cert_file, c.mqtt.key_file]).toEqual([
      path.join(dir, 'ca.pem'),
      path.join(dir, 'c.pem'),
      path.join(dir, 'k.pem'),
    ]);
  });

  it.each([
    ['mqtt.password_file', 'mqtt: { password_file: missing.pw }'],
    ['mqtt.ca_file', 'mqtt: { ca_file: missing-ca.pem }'],
    [
      'broker.users.0.password_file',
      'broker:\n  users:\n    - { username: ha, password_file: /nonexistent/dir/ha.pw, role: controller }\n',
    ],
  ])('a missing %s names the key and the file', (keyPath, yaml) => {
    expectOnly(
      yaml,
      keyPath,
      /^cannot read .*(missing|ha\.pw).*ENOENT.* — check the path and its permissions$/,
    );
  });
});

describe('parseConfig: YAML and file errors', () => {
  it('a YAML syntax error names the line and column', () => {
    const issues = issuesOf('mqtt:\n  url: mqtt://x\nactions: [uptime\nbroker: {}\n');
    expect(issues.length).toBeGreaterThanOrEqual(1);
    expect(issues[0]!.path).toMatch(/^\(yaml line \d+, column \d+\)$/);
    expect(issues[0]!.message).toMatch(/ — fix the YAML syntax there$/);
  });

  it.each([
    // The YAML parser flags the compact mapping on line 2 that line 3 tries to nest into.
    ['bad indentation', 'mqtt:\n  url: x\n    prefix: y\n', 2],
    ['a tab for indentation', 'mqtt:\n\turl: x\n', 2],
    ['duplicate key', 'host: a\nhost: b\n', 2],
    ['unclosed flow sequence', 'host: a\nmqtt: {}\nactions: [uptime\nbroker: {}\n', 4],
  ])('%s: the reported line is right', (_label, yaml, line) => {
    const issues = issuesOf(yaml);
    expect(issues[0]!.path).toMatch(new RegExp(`^\\(yaml line ${line}, column \\d+\\)$`));
  });

  it('the position is 1-based, pointing at the offending text', () => {
    const issues = issuesOf('host: a\nhost: b\n');
    expect(issues[0]!.path).toBe('(yaml line 2, column 1)');
    expect(issues[0]!.message).toMatch(/unique/i);
  });

  it.each(['- a\n- b\n', '42\n', '"text"\n'])(
    'a document that is not a mapping (%j) is refused at the root',
    (yaml) => {
      expectOnly(yaml, '(root)', 'the file must be a YAML mapping of keys (host:, mqtt:, actions: …)');
    },
  );

  it('loadConfig on a missing file says so, naming --config', () => {
    expect(() => loadConfig(path.join(dir, 'nope.yaml'))).toThrow(ConfigError);
    try {
      loadConfig(path.join(dir, 'nope.yaml'));
    } catch (err) {
      expect((err as ConfigError).issues).toEqual([
        { path: '(file)', message: 'cannot read it: no such file — check the path given to --config' },
      ]);
    }
  });

  it('loadConfig reads a real file', () => {
    const file = write('real.yaml', 'host: real-host\n');
    expect(loadConfig(file, {}).host).toBe('real-host');
  });

  it('the error message lists every problem with its path', () => {
    try {
      parse('foo: 1\nmqtt: { keepalive: x }');
      throw new Error('expected a ConfigError');
    } catch (err) {
      const msg = (err as Error).message;
      expect(msg).toMatch(
        new RegExp(`^${SOURCE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 2 problem\\(s\\)\\n`),
      );
      expect(msg).toContain('\n  foo: unknown key');
      expect(msg).toContain('\n  mqtt.keepalive: "x" is not a duration');
    }
  });
});

describe('parseConfig: every problem at once', () => {
  it('a default of the wrong type is one clear problem at its own key, not a crash of the cross-checks', () => {
    const issues = issuesOf(`
actions:
  a:
    argv: [echo, "{x}", "{y}", "{z}"]
    params:
      x: { type: string, pattern: "^[a-z]+$", default: 5 }
      y: { type: integer, default: "7" }
      z: { type: enum, values: [a], default: 3 }
`);
    expect(issues.map((i) => i.path).sort()).toEqual([
      'actions.a.params.x.default',
      'actions.a.params.y.default',
      'actions.a.params.z.default',
    ]);
    for (const i of issues) expect(i.message).toMatch(/^expected (string|number), got /);
  });

  it('reports all schema problems of a file in one go', () => {
    const yaml = `
hots: x
mqtt: { keepalive: 10x, bar: 2 }
execution: { concurrency: 0 }
actions:
  a:
    argv: ["{x}", "{y}"]
    params:
      x: { type: string, pattern: "^a$", default: a }
      z: { type: integer, min: 1, max: 3, default: 5 }
    button: true
    pattern: "^(?<q>a)$"
  b:
    argv: [echo, "{e}"]
    params:
      e: { type: enum, values: [a, b], default: c }
  c:
    argv: [echo]
    params:
      s: { type: string, pattern: "(" }
broker:
  users:
    - { username: u, password: p, password_file: /x, role: agent }
`;
    const issues = issuesOf(yaml);
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'hots',
        'mqtt.bar',
        'mqtt.keepalive',
        'execution.concurrency',
        'actions.a.argv.0',
        'actions.a.argv.1',
        'actions.a.params.z',
        'actions.a.params.z.default',
        'actions.a.pattern',
        'actions.b.params.e.default',
        'actions.c.params.s.pattern',
        'broker.users.0',
        'broker.users.0.host',
      ]),
    );
    expect(issues.length).toBeGreaterThanOrEqual(13);
  });

  it('reports every unreadable secret and the duplicate username together', () => {
    const yaml = `
mqtt: { password_file: missing-1.pw }
broker:
  users:
    - { username: u, password_file: missing-2.pw, role: controller }
    - { username: u, password: p, role: controller }
`;
    expect(issuesOf(yaml).map((i) => i.path)).toEqual([
      'mqtt.password_file',
      'broker.users.0.password_file',
      'broker.users.1.username',
    ]);
  });

  it('reports several YAML syntax errors together', () => {
    expect(issuesOf('host: a\nhost: b\nmqtt: {}\nmqtt: {}\n').length).toBe(2);
  });
});

describe('the shipped example config', () => {
  it('config/agent.example.yaml parses with no error', () => {
    const c = loadConfig(exampleConfigPath(), {});
    expect(c.source).toBe(exampleConfigPath());
    expect(Object.keys(c.actions).sort()).toEqual(['disk_usage', 'echo', 'uptime']);
    expect(c.execution.enabled).toBe(true);
    expect(c.actions.echo!.params.message).toMatchObject({ type: 'string', default: 'hello' });
    expect(c.broker.users).toEqual([]);
  });
});
