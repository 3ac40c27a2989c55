/**
 * Reboot actions, the pure parts: the boot id, what a reboot command's end means, the verdict after the
 * boot (core/boot.ts); the `reboot:` config key; the Reboot button and the Last reboot sensor in HA
 * discovery (docs/configuration.md § Reboots, docs/home-assistant.md § Reboots).
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import {
  bootVerdict,
  checksFailedError,
  goingDown,
  parseBootId,
  seconds,
  stillUpError,
} from '../../src/core/boot.js';
import { buildDiscovery, HA_MAX_STATE } from '../../src/core/discovery.js';
import { resultSchema } from '../../src/core/formats.js';
import { makeResult } from '../../src/core/result.js';
import { ConfigError } from '../../src/errors.js';
import { VERSION } from '../../src/version.js';

const parse = (yaml: string): Config => parseConfig(yaml, '/test/reboot.yaml', {});

function problems(yaml: string): { path: string; message: string }[] {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('parseBootId', () => {
  it.each([
    ['0f6c7b1e-3d8a-4e52-9c1b-2f0d9a6e4b11\n', '0f6c7b1e-3d8a-4e52-9c1b-2f0d9a6e4b11'],
    ['  boot-2  \n', 'boot-2'],
    ['', undefined],
    ['two words', undefined],
    ['x'.repeat(65), undefined],
    ['a\nb', undefined],
  ])('%j → %j', (text, id) => expect(parseBootId(text)).toBe(id));
});

describe('goingDown: a reboot command end that means the host is going down', () => {
  it.each([
    ['succeeded', 0, true], // systemctl reboot returns at once
    ['interrupted', -1, true], // the agent stopped while it ran
    ['failed', 143, true], // SIGTERM from the shutdown
    ['failed', 137, true], // SIGKILL
    ['failed', 129, true], // SIGHUP
    ['failed', 1, false], // refused: the host is not rebooting
    ['failed', 127, false], // not found
    ['timed_out', -1, false],
  ] as const)('%s, exit %i → %s', (status, exit_code, down) =>
    expect(goingDown({ status, exit_code })).toBe(down),
  );
});

describe('bootVerdict', () => {
  const before = { boot_id_before: 'boot-1', down_at: '2026-12-07T03:30:00.000Z' };
  const back = new Date('2026-12-07T03:31:14.500Z');

  it('a new boot id: rebooted, with the downtime from the reboot command to the agent start', () => {
    const v = bootVerdict(before, 'boot-2', back, '/proc/sys/kernel/random/boot_id');
    // In the schema's key order, so a republished result is byte-identical.
    expect(Object.keys(v.info)).toEqual([
      'boot_id_before',
      'boot_id_after',
      'down_at',
      'back_at',
      'downtime_ms',
    ]);
    expect(v).toEqual({
      rebooted: true,
      info: {
        boot_id_before: 'boot-1',
        boot_id_after: 'boot-2',
        down_at: '2026-12-07T03:30:00.000Z',
        back_at: '2026-12-07T03:31:14.500Z',
        downtime_ms: 74_500,
      },
    });
  });

  it('the same boot id: not rebooted, and the error says the agent alone restarted', () => {
    const v = bootVerdict(before, 'boot-1', back, '/f');
    expect(v.rebooted).toBe(false);
    if (v.rebooted) return;
    expect(v.error).toContain('the boot id is still boot-1');
    expect(v.error).toContain('75 s after the reboot command');
    expect(v.info.boot_id_after).toBe('boot-1');
  });

  it('no boot id now: not rebooted, unknown, naming the file', () => {
    const v = bootVerdict(before, undefined, back, '/missing/boot_id');
    expect(v.rebooted).toBe(false);
    if (v.rebooted) return;
    expect(v.error).toContain('/missing/boot_id');
    expect(v.info.boot_id_after).toBeUndefined();
  });

  it('a clock that went back never gives a negative downtime', () => {
    const v = bootVerdict(before, 'boot-2', new Date('2026-12-07T03:29:00.000Z'), '/f');
    expect(v.info.downtime_ms).toBe(0);
  });

  it('the result with its reboot info matches the result schema', () => {
    const v = bootVerdict(before, 'boot-2', back, '/f');
    const r = makeResult('pi-1', { id: 'r1', action: 'reboot' }, { status: 'succeeded', reboot: v.info });
    expect(resultSchema.parse(r).reboot?.downtime_ms).toBe(74_500);
    const rebooting = makeResult(
      'pi-1',
      { id: 'r1', action: 'reboot' },
      { status: 'rebooting', reboot: before },
    );
    expect(resultSchema.parse(rebooting).status).toBe('rebooting');
  });
});

describe('the sentences', () => {
  it.each([
    [250, '0.3 s'],
    [9_949, '9.9 s'],
    [74_432, '74 s'],
  ])('seconds(%i) = %s', (ms, text) => expect(seconds(ms)).toBe(text));

  it('say what to do', () => {
    expect(stillUpError(300_000)).toMatch(/still up with the same boot id 5m later \(reboot.down_within\)/);
    expect(checksFailedError(185, 'its health check failed (exit 3: FTL down)', 60_000, 5)).toBe(
      'the host rebooted (away 0.2 s) but its health check failed (exit 3: FTL down), still after reboot.healthy_within (1m, 5 tries) — fix the host',
    );
  });
});

describe('config: actions.<name>.reboot', () => {
  it('true takes the defaults; a mapping sets them', () => {
    const c = parse(`
actions:
  reboot: { argv: [systemctl, reboot], reboot: true }
  later: { argv: [reboot], reboot: { down_within: 30s, boot_id_file: /tmp/boot } }
  plain: { argv: [uptime] }
`);
    expect(c.actions.reboot?.reboot).toEqual({
      down_within: 300_000,
      healthy_within: 300_000,
      boot_id_file: '/proc/sys/kernel/random/boot_id',
    });
    expect(c.actions.later?.reboot?.down_within).toBe(30_000);
    expect(c.actions.later?.reboot?.boot_id_file).toBe('/tmp/boot');
    expect(c.actions.plain?.reboot).toBeUndefined();
  });

  it.each([
    [
      'rollback',
      '{ argv: [reboot], reboot: true, rollback: [["true"]] }',
      'actions.r.rollback',
      /cannot be rolled back/,
    ],
    [
      'retry',
      '{ argv: [reboot], reboot: true, idempotent: true, retry: { attempts: 2 } }',
      'actions.r.retry',
      /cannot be run again/,
    ],
    [
      'a relative boot_id_file',
      '{ argv: [reboot], reboot: { boot_id_file: boot_id } }',
      'actions.r.reboot.boot_id_file',
      /absolute path/,
    ],
    ['an unknown key', '{ argv: [reboot], reboot: { after: 5m } }', 'actions.r.reboot.after', /unknown key/],
    [
      'a param without a default (its button sends none)',
      '{ argv: [shutdown, -r, "{when}"], params: { when: { type: string, pattern: "^now$" } }, reboot: true }',
      'actions.r.reboot',
      /Reboot button .* param "when" has no default/,
    ],
  ])('refuses %s', (_what, action, path, message) => {
    const issues = problems(`actions:\n  r: ${action}\n`);
    const hit = issues.find((i) => i.path === path);
    expect(hit, JSON.stringify(issues)).toBeDefined();
    expect(hit?.message).toMatch(message);
  });
});

describe('Home Assistant: the Reboot button and the Last reboot sensor', () => {
  const discovery = (actions: string) =>
    buildDiscovery({
      host: 'pi-1',
      prefix: 'homelab',
      discoveryPrefix: 'homeassistant',
      version: VERSION,
      actions: parse(`actions:\n${actions}`).actions,
    });

  it('a reboot action gets a restart button (without button: true) and the host a Last reboot sensor', () => {
    const msgs = discovery('  reboot: { argv: [systemctl, reboot], reboot: true }\n');
    const button = msgs.find((m) => m.topic === 'homeassistant/button/pi-1/run_reboot/config');
    expect(button?.payload).toMatchObject({
      name: 'Reboot',
      unique_id: 'homelab_cmd_pi-1_run_reboot',
      command_topic: 'homelab/pi-1/cmd/reboot',
      device_class: 'restart',
      availability_topic: 'homelab/pi-1/status',
    });
    const sensor = msgs.find((m) => m.topic === 'homeassistant/sensor/pi-1/last_reboot/config');
    expect(sensor?.payload).toMatchObject({
      name: 'Last reboot',
      unique_id: 'homelab_cmd_pi-1_last_reboot',
      state_topic: 'homelab/pi-1/reboot',
      value_template: '{{ value_json.status }}',
      json_attributes_topic: 'homelab/pi-1/reboot',
    });
    // No availability: while the host is down HA keeps showing `rebooting`.
    expect(sensor?.payload).not.toHaveProperty('availability_topic');
    expect(String(sensor?.payload.json_attributes_template)).not.toContain("'state'");
    expect('rebooting'.length).toBeLessThanOrEqual(HA_MAX_STATE);
  });

  it('a device_class of its own wins; without a reboot action there is no Last reboot sensor', () => {
    const own = discovery(
      '  reboot: { argv: [reboot], reboot: true, device_class: identify, name: Restart host }\n',
    );
    expect(own.find((m) => m.topic.endsWith('/run_reboot/config'))?.payload).toMatchObject({
      name: 'Restart host',
      device_class: 'identify',
    });
    const none = discovery('  uptime: { argv: [uptime], button: true }\n');
    expect(none.some((m) => m.topic.includes('last_reboot'))).toBe(false);
  });
});
