/** Probes as data: config validation, the state object, argv, output reading and HA entities. */
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import type { ProbeConfig, ProbeOf } from '../../src/config/probes.js';
import { buildDiscovery } from '../../src/core/discovery.js';
import { probeEntities } from '../../src/core/discovery-probes.js';
import {
  diskReading,
  diskUsage,
  emptyExtra,
  networkError,
  parsePing,
  pingArgv,
  pingReading,
  probeState,
  processMatches,
  serviceArgv,
  statusAccepted,
} from '../../src/core/probes.js';
import { type ConfigIssue } from '../../src/errors.js';
import { configIssues } from '../helpers/config-issues.js';
import { VERSION } from '../../src/version.js';

const load = (yaml: string): Config => parseConfig(yaml, '/nonexistent/agent.yaml', {});
const probe = (yaml: string): ProbeConfig => load(`probes:\n  p: ${yaml}\n`).probes.p!;
const of = <T extends ProbeConfig['type']>(type: T, yaml: string) => probe(yaml) as ProbeOf<T>;

const issues = (yaml: string): ConfigIssue[] => configIssues(yaml, '/nonexistent/agent.yaml');

describe('config: defaults', () => {
  it('no probes by default', () => {
    expect(load('').probes).toEqual({});
  });

  it.each<[string, string, Record<string, unknown>]>([
    [
      'http',
      '{ type: http, url: "http://127.0.0.1:8080/health" }',
      { interval: 60_000, timeout: 5_000, method: 'GET', insecure: false },
    ],
    ['tcp', '{ type: tcp, host: 127.0.0.1, port: 1883 }', { interval: 60_000, timeout: 5_000 }],
    ['ping', '{ type: ping, host: "::1" }', { count: 3, timeout: 5_000 }],
    ['service', '{ type: service, unit: "getty@tty1.service" }', { unit: 'getty@tty1.service' }],
    ['disk', '{ type: disk, path: / }', { path: '/' }],
    ['process', '{ type: process, process: node }', { process: 'node' }],
    [
      'durations in any form',
      '{ type: tcp, host: nas.lan, port: 22, interval: 5m, timeout: 2.5 }',
      { interval: 300_000, timeout: 2_500 },
    ],
    [
      'the default timeout never exceeds a short interval',
      '{ type: tcp, host: a, port: 1, interval: 2s }',
      { interval: 2_000, timeout: 2_000 },
    ],
  ])('%s', (_l, yaml, expected) => {
    expect(probe(yaml)).toMatchObject(expected);
  });

  it('disk has no warn_percent and http no status unless given', () => {
    expect(probe('{ type: disk, path: / }')).not.toHaveProperty('warn_percent');
    expect(of('http', '{ type: http, url: "http://a/" }').status).toBeUndefined();
  });
});

describe('config: every mistake is reported at its key path', () => {
  it.each<[string, string, string, RegExp]>([
    [
      'ping host "-f" (option injection)',
      '{ type: ping, host: "-f" }',
      'probes.p.host',
      /"-f" is not a host name or IP address .* never a leading "-"/,
    ],
    ['ping host with a space', '{ type: ping, host: "a b" }', 'probes.p.host', /not a host name/],
    [
      'tcp host beginning with "-"',
      '{ type: tcp, host: "-oProxyCommand=x", port: 22 }',
      'probes.p.host',
      /not a host name/,
    ],
    ['tcp port 0', '{ type: tcp, host: a, port: 0 }', 'probes.p.port', /./],
    ['tcp port 65536', '{ type: tcp, host: a, port: 65536 }', 'probes.p.port', /./],
    ['tcp without port', '{ type: tcp, host: a }', 'probes.p.port', /is required/],
    ['ping count 11', '{ type: ping, host: a, count: 11 }', 'probes.p.count', /./],
    [
      'http url of another scheme',
      '{ type: http, url: "file:///etc/passwd" }',
      'probes.p.url',
      /not an http:\/\/ or https:\/\/ URL/,
    ],
    ['http url that is no URL', '{ type: http, url: "localhost:80" }', 'probes.p.url', /not an http/],
    [
      'http status out of range',
      '{ type: http, url: "http://a/", status: 700 }',
      'probes.p.status',
      /HTTP status code, 100–599/,
    ],
    [
      'http status list with a bad entry',
      '{ type: http, url: "http://a/", status: [200, 99] }',
      'probes.p.status.1',
      /HTTP status code/,
    ],
    [
      'http method POST',
      '{ type: http, url: "http://a/", method: POST }',
      'probes.p.method',
      /must be one of "GET", "HEAD"/,
    ],
    [
      'http body that does not compile',
      '{ type: http, url: "http://a/", body: "(" }',
      'probes.p.body',
      /does not compile .* searched for anywhere in the body/,
    ],
    [
      'http body with HEAD',
      '{ type: http, url: "http://a/", method: HEAD, body: ok }',
      'probes.p.body',
      /a HEAD response has no body to match — use method: GET/,
    ],
    ['a key of another kind', '{ type: http, url: "http://a/", port: 80 }', 'probes.p.port', /unknown key/],
    [
      'service unit beginning with "-"',
      '{ type: service, unit: "--user" }',
      'probes.p.unit',
      /systemd unit name .* never a leading "-"/,
    ],
    ['service unit with a space', '{ type: service, unit: "a b" }', 'probes.p.unit', /systemd unit name/],
    ['disk path relative', '{ type: disk, path: data }', 'probes.p.path', /absolute path/],
    ['disk warn_percent 0', '{ type: disk, path: /, warn_percent: 0 }', 'probes.p.warn_percent', /./],
    ['disk warn_percent 101', '{ type: disk, path: /, warn_percent: 101 }', 'probes.p.warn_percent', /./],
    [
      'process name with a control character',
      '{ type: process, process: "a\\u0007" }',
      'probes.p.process',
      /control characters/,
    ],
    [
      'unknown type',
      '{ type: snmp, host: a }',
      'probes.p.type',
      /needs type: http, tcp, ping, service, disk, process or command/,
    ],
    ['no type', '{ host: a }', 'probes.p.type', /needs type/],
    ['interval under 1s', '{ type: disk, path: /, interval: 500ms }', 'probes.p.interval', /at least 1s/],
    [
      'interval not a duration',
      '{ type: disk, path: /, interval: soon }',
      'probes.p.interval',
      /not a duration/,
    ],
    [
      'timeout longer than interval',
      '{ type: disk, path: /, interval: 10s, timeout: 20s }',
      'probes.p.timeout',
      /20s is longer than interval \(10s\)/,
    ],
    ['name too long', `{ type: disk, path: /, name: "${'x'.repeat(65)}" }`, 'probes.p.name', /./],
  ])('%s', (_l, yaml, path, message) => {
    const found = issues(`probes:\n  p: ${yaml}\n`);
    expect(found.map((i) => i.path)).toEqual([path]);
    expect(found[0]!.message).toMatch(message);
  });

  it('a probe name follows the action-name rule', () => {
    expect(issues('probes:\n  Web-1: { type: disk, path: / }\n')).toEqual([
      { path: 'probes.Web-1', message: 'probe names must match ^[a-z0-9][a-z0-9_]{0,62}$' },
    ]);
  });

  it('several bad probes: every problem at once', () => {
    const found = issues(
      'probes:\n  a: { type: ping, host: "-f" }\n  b: { type: disk, path: x }\n  c: { type: tcp, host: a, port: 0 }\n',
    );
    expect(found.map((i) => i.path).sort()).toEqual(['probes.a.host', 'probes.b.path', 'probes.c.port']);
  });
});

describe('the state object', () => {
  const at = new Date('2026-01-02T03:04:05.678Z');

  it('has a fixed key order, kind fields last, and no error when ok', () => {
    const s = probeState(
      'web',
      'http',
      { ok: true, value: 12, error: null, extra: { status_code: 200 } },
      12.4,
      at,
    );
    expect(JSON.stringify(s)).toBe(
      '{"name":"web","type":"http","ok":true,"value":12,"unit":"ms","duration_ms":12,"checked_at":"2026-01-02T03:04:05.678Z","error":null,"status_code":200}',
    );
  });

  it.each<[ProbeConfig['type'], string | null]>([
    ['http', 'ms'],
    ['tcp', 'ms'],
    ['ping', 'ms'],
    ['service', null],
    ['disk', '%'],
    ['process', null],
  ])('%s: unit %s', (type, unit) => {
    expect(probeState('p', type, { ok: true, value: 1, error: null }, 0, at).unit).toBe(unit);
  });

  it('a check without a reading has the same keys as one with', () => {
    const keys = (e: Record<string, unknown> | undefined) => Object.keys(e ?? {});
    expect(keys(emptyExtra('http'))).toEqual(['status_code']);
    expect(keys(emptyExtra('ping'))).toEqual(
      keys(
        pingReading(of('ping', '{ type: ping, host: a }'), 0, '1 packets transmitted, 1 received', '').extra,
      ),
    );
    expect(keys(emptyExtra('disk'))).toEqual(
      keys(
        diskReading(of('disk', '{ type: disk, path: / }'), { blocks: 1, bfree: 1, bavail: 1, bsize: 1 })
          .extra,
      ),
    );
    for (const type of ['tcp', 'service', 'process'] as const) expect(emptyExtra(type)).toBeUndefined();
  });

  it("cuts an error to 200 characters and keeps a failure's value", () => {
    const s = probeState(
      'web',
      'http',
      { ok: false, value: 30, error: 'e'.repeat(1000), extra: { status_code: 503 } },
      30,
      at,
    );
    expect(s.error).toHaveLength(200);
    expect(s).toMatchObject({ ok: false, value: 30, status_code: 503 });
  });
});

describe('http status', () => {
  it.each<[number | number[] | undefined, number, boolean]>([
    [undefined, 200, true],
    [undefined, 204, true],
    [undefined, 299, true],
    [undefined, 301, false],
    [undefined, 404, false],
    [200, 200, true],
    [200, 204, false],
    [[200, 301, 302], 302, true],
    [[401], 401, true],
    [[401], 200, false],
  ])('expected %j, got %i → %s', (status, code, ok) => {
    expect(statusAccepted(status, code)).toBe(ok);
  });
});

describe('ping', () => {
  const p = of('ping', '{ type: ping, host: 192.168.1.1, count: 2, timeout: 3s }');

  it('argv: no shell, count and deadline as options, the host last', () => {
    expect(pingArgv(p)).toEqual(['ping', '-c', '2', '-w', '3', '192.168.1.1']);
    expect(pingArgv(of('ping', '{ type: ping, host: a, timeout: 500ms }'))).toEqual([
      'ping',
      '-c',
      '3',
      '-w',
      '1',
      'a',
    ]);
  });

  const IPUTILS = `PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.061 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1001ms
rtt min/avg/max/mdev = 0.045/0.053/0.061/0.008 ms
`;
  const BUSYBOX = `PING 10.0.0.1 (10.0.0.1): 56 data bytes
64 bytes from 10.0.0.1: seq=0 ttl=64 time=1.204 ms

--- 10.0.0.1 ping statistics ---
2 packets transmitted, 1 packets received, 50% packet loss
round-trip min/avg/max = 1.204/1.204/1.204 ms
`;
  const LOST = `PING 10.9.9.9 (10.9.9.9) 56(84) bytes of data.

--- 10.9.9.9 ping statistics ---
2 packets transmitted, 0 received, 100% packet loss, time 1025ms
`;

  it.each([
    ['iputils', IPUTILS, { transmitted: 2, received: 2, avgMs: 0.053 }],
    ['busybox', BUSYBOX, { transmitted: 2, received: 1, avgMs: 1.204 }],
    [
      'inetutils with stddev',
      '3 packets transmitted, 3 packets received, 0% packet loss\nround-trip min/avg/max/stddev = 0.1/0.2/0.3/0.1 ms\n',
      { transmitted: 3, received: 3, avgMs: 0.2 },
    ],
    ['all lost', LOST, { transmitted: 2, received: 0, avgMs: null }],
    ['nothing readable', 'ping: socket: Operation not permitted', undefined],
  ])('reads %s output', (_l, out, expected) => {
    expect(parsePing(out)).toEqual(expected);
  });

  it.each([
    ['all replies', IPUTILS, 0, { ok: true, value: 0.053, error: null, extra: { loss_percent: 0 } }],
    // iputils exits 1 when a reply missed the deadline: one reply is still "reachable".
    ['one of two replies', BUSYBOX, 1, { ok: true, value: 1.204, error: null, extra: { loss_percent: 50 } }],
    [
      'no reply',
      LOST,
      1,
      { ok: false, value: null, error: 'no reply from 192.168.1.1 (2 sent)', extra: { loss_percent: 100 } },
    ],
  ])('%s', (_l, out, code, expected) => {
    expect(pingReading(p, code, out, '')).toEqual(expected);
  });

  it('unreadable output: the exit code decides, stderr explains', () => {
    expect(pingReading(p, 2, '', 'ping: socket: Operation not permitted\n')).toMatchObject({
      ok: false,
      error: 'ping: socket: Operation not permitted',
    });
    expect(pingReading(p, 0, 'odd', '')).toMatchObject({ ok: true, value: null });
  });
});

describe('service', () => {
  it('argv: systemctl is-active UNIT', () => {
    expect(serviceArgv(of('service', '{ type: service, unit: nginx }'))).toEqual([
      'systemctl',
      'is-active',
      'nginx',
    ]);
  });
});

describe('process', () => {
  it.each([
    ['comm', 'nginx', 'nginx\n', 'nginx: master process /usr/sbin/nginx', true],
    ['argv[0] base name', 'node', 'MainThread\n', '/usr/bin/node\0/srv/app.js\0', true],
    [
      'a long name the kernel cut in comm',
      'homeassistant-core',
      'homeassistant-c\n',
      '/opt/ha/homeassistant-core\0--config\0',
      true,
    ],
    ['another process', 'nginx', 'sshd\n', '/usr/sbin/sshd\0-D\0', false],
    ['a prefix is not a match', 'node', 'nodejs\n', '/usr/bin/nodejs\0', false],
    ['an argument is not argv[0]', 'nginx', 'vim\n', 'vim\0nginx\0', false],
    ['a kernel thread (empty cmdline)', 'nginx', 'kworker/0:1\n', '', false],
  ])('%s', (_l, wanted, comm, cmdline, expected) => {
    expect(processMatches(wanted, comm, cmdline)).toBe(expected);
  });
});

describe('disk', () => {
  // 1000 blocks of 4 KiB: 600 used, 350 available to users, 50 reserved for root.
  const fs = { blocks: 1000, bfree: 400, bavail: 350, bsize: 4096 };

  it('used share as df computes it (the root reserve counts as full)', () => {
    expect(diskUsage(fs)).toEqual({ percent: 63.2, used: 600 * 4096, total: 1000 * 4096, free: 350 * 4096 });
    expect(diskUsage({ blocks: 0, bfree: 0, bavail: 0, bsize: 4096 }).percent).toBe(0);
  });

  it.each([
    ['no warn_percent: always ok', '{ type: disk, path: / }', true],
    ['below warn_percent', '{ type: disk, path: /, warn_percent: 70 }', true],
    ['at or above warn_percent', '{ type: disk, path: /, warn_percent: 63.2 }', false],
  ])('%s', (_l, yaml, ok) => {
    const r = diskReading(of('disk', yaml), fs);
    expect(r).toMatchObject({
      ok,
      value: 63.2,
      extra: { used_bytes: 600 * 4096, free_bytes: 350 * 4096, total_bytes: 1000 * 4096 },
    });
    expect(r.error === null).toBe(ok);
  });
});

describe('network errors say what to do, and never show a URL', () => {
  it.each([
    ['ECONNREFUSED', 'connection refused by 127.0.0.1:9 — nothing listens there'],
    ['ENOTFOUND', '127.0.0.1 does not resolve — check the host name'],
    [
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'the TLS certificate of 127.0.0.1:9 was refused (DEPTH_ZERO_SELF_SIGNED_CERT) — fix the certificate, or set insecure: true for a self-signed one',
    ],
    [undefined, '127.0.0.1:9: boom'],
  ])('%s', (code, expected) => {
    expect(networkError(code, 'boom', '127.0.0.1:9')).toBe(expected);
  });
});

describe('Home Assistant entities', () => {
  const config = load(`host: nas
probes:
  web: { type: http, url: "http://127.0.0.1/", name: Web UI }
  ssh: { type: tcp, host: 127.0.0.1, port: 22 }
  gateway: { type: ping, host: 192.168.1.1 }
  nginx: { type: service, unit: nginx }
  data: { type: disk, path: /srv, warn_percent: 90 }
  app: { type: process, process: node }
`);
  const msgs = buildDiscovery({
    host: 'nas',
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    version: VERSION,
    actions: {},
    probes: config.probes,
  });
  const byTopic = new Map(msgs.map((m) => [m.topic, m.payload]));

  it.each([
    ['web', 'binary_sensor', 'connectivity', 'Web UI', 'sensor/nas/probe_web-latency'],
    ['ssh', 'binary_sensor', 'connectivity', 'Ssh', 'sensor/nas/probe_ssh-latency'],
    ['gateway', 'binary_sensor', 'connectivity', 'Gateway', 'sensor/nas/probe_gateway-latency'],
    ['nginx', 'binary_sensor', 'running', 'Nginx', undefined],
    ['data', 'binary_sensor', 'problem', 'Data', 'sensor/nas/probe_data-used'],
    ['app', 'binary_sensor', 'running', 'App', undefined],
  ])('%s: a %s of class %s named %s, and its sensor %s', (name, component, deviceClass, label, sensor) => {
    const b = byTopic.get(`homeassistant/${component}/nas/probe_${name}/config`);
    expect(b).toMatchObject({
      name: label,
      unique_id: `homelab_cmd_nas_probe_${name}`,
      default_entity_id: `binary_sensor.nas_probe_${name}`,
      state_topic: `homelab/nas/probe/${name}`,
      json_attributes_topic: `homelab/nas/probe/${name}`,
      device_class: deviceClass,
      availability_topic: 'homelab/nas/status',
    });
    const sensors = msgs.filter((m) => m.topic.startsWith(`homeassistant/sensor/nas/probe_${name}-`));
    expect(sensors.map((m) => m.topic)).toEqual(sensor ? [`homeassistant/${sensor}/config`] : []);
    if (sensor)
      expect(sensors[0]!.payload).toMatchObject({
        state_topic: `homelab/nas/probe/${name}`,
        value_template: '{{ value_json.value }}',
        state_class: 'measurement',
      });
  });

  it('problem is ON when the check fails; connectivity and running are ON when it passes', () => {
    expect(byTopic.get('homeassistant/binary_sensor/nas/probe_data/config')?.value_template).toBe(
      "{{ 'OFF' if value_json.ok else 'ON' }}",
    );
    expect(byTopic.get('homeassistant/binary_sensor/nas/probe_web/config')?.value_template).toBe(
      "{{ 'ON' if value_json.ok else 'OFF' }}",
    );
  });

  it('latency in ms as a duration, disk use in %', () => {
    expect(byTopic.get('homeassistant/sensor/nas/probe_web-latency/config')).toMatchObject({
      name: 'Web UI latency',
      device_class: 'duration',
      unit_of_measurement: 'ms',
    });
    expect(byTopic.get('homeassistant/sensor/nas/probe_data-used/config')).toMatchObject({
      name: 'Data used',
      unit_of_measurement: '%',
    });
  });

  // What each kind's state object holds (the fields probe-checks.ts and core/probes.ts fill in).
  const FIELDS: Record<ProbeConfig['type'], string[]> = {
    http: ['status_code'],
    tcp: [],
    ping: ['loss_percent'],
    service: [],
    disk: ['used_bytes', 'free_bytes', 'total_bytes'],
    process: [],
    command: ['exit_code', 'attributes'],
  };
  const STATE = ['name', 'type', 'ok', 'value', 'unit', 'duration_ms', 'checked_at', 'error'];

  it.each(Object.entries(config.probes))(
    '%s: templates read only fields of its state object, and attributes leave out what changes at every check',
    (name, p) => {
      for (const e of probeEntities(name, p, name, `homelab/nas/probe/${name}`)) {
        const templates = [e.body.value_template, e.body.json_attributes_template].filter(
          (t): t is string => typeof t === 'string',
        );
        for (const [, field] of templates.join(' ').matchAll(/value_json\.(\w+)/g))
          expect([...STATE, ...FIELDS[p.type]]).toContain(field);
        const attrs = String(e.body.json_attributes_template ?? '');
        for (const volatile of ['checked_at', 'duration_ms']) expect(attrs).not.toContain(volatile);
        if (p.type !== 'service' && p.type !== 'process') expect(attrs).not.toContain('value_json.value');
      }
    },
  );
});
