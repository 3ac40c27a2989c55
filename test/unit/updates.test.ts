import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { buildDiscovery } from '../../src/core/discovery.js';
import { UPDATE_VALUE_TEMPLATE } from '../../src/core/discovery-updates.js';
import {
  aptProgress,
  lastAptProgress,
  MAX_SUMMARY,
  parseAptSimulation,
  parseHolds,
  parseRebootPackages,
  releaseSummary,
  UP_TO_DATE,
  updateLabels,
  updateState,
  type PendingPackage,
} from '../../src/core/updates.js';

// Pure parts of the OS update entity (docs/updates.md): apt-get -s output, the labels HA compares
// and skips, the summary, the state HA reads, apt's progress lines and the config keys.

const fixture = (name: string): string => readFileSync(`test/fixtures/apt/${name}`, 'utf8');

describe('parseAptSimulation', () => {
  it('Debian: security first, phased and kept-back left out, Conf lines and the trailing [] ignored', () => {
    const r = parseAptSimulation(fixture('upgrade-debian.txt'));
    expect(r.pending.map((p) => p.name)).toEqual(['openssl', 'curl', 'libcurl4', 'tzdata']);
    expect(r.pending[0]).toEqual({
      name: 'openssl',
      from: '3.0.14-1~deb12u2',
      to: '3.0.15-1~deb12u1',
      security: true,
    });
    expect(r.pending.filter((p) => p.security)).toHaveLength(1);
    expect(r.phased).toEqual(['systemd-timesyncd']);
  });

  it('Ubuntu: several origins (one -security), a new package without [old], a phased one that still has an Inst line', () => {
    const r = parseAptSimulation(fixture('upgrade-ubuntu.txt'));
    expect(r.pending).toEqual([
      { name: 'libssl3', from: '3.0.13-0ubuntu3.3', to: '3.0.13-0ubuntu3.4', security: true },
      { name: 'linux-image-6.8.0-49-generic', from: null, to: '6.8.0-49.49', security: false },
    ]);
    expect(r.phased).toEqual(['python3-software-properties', 'software-properties-common']);
  });

  it('held packages (apt-mark showhold) are not counted even when apt lists them', () => {
    const holds = parseHolds('curl\nlibcurl4:arm64\n\n');
    expect(holds).toEqual(['curl', 'libcurl4:arm64']);
    const r = parseAptSimulation(fixture('upgrade-debian.txt'), holds);
    expect(r.pending.map((p) => p.name)).toEqual(['openssl', 'tzdata']);
    expect(r.held).toEqual(['libcurl4', 'curl']);
  });

  it('nothing pending', () => {
    expect(parseAptSimulation(fixture('upgrade-none.txt')).pending).toEqual([]);
  });

  it("this machine's own apt output (Debian 12, recorded): every Inst line read, security ones recognised", () => {
    const text = fixture('real-debian12.txt');
    const r = parseAptSimulation(text);
    expect(r.pending).toHaveLength(text.split('\n').filter((l) => l.startsWith('Inst ')).length);
    expect(r.pending.filter((p) => p.security)).toHaveLength(
      text.split('\n').filter((l) => l.startsWith('Inst ') && l.includes('-security')).length,
    );
    expect(r.pending.every((p) => p.from !== '' && p.to !== '')).toBe(true);
  });

  it('hostile lines: no Inst match, no throw', () => {
    for (const t of ['Inst', 'Inst x [', 'Inst x [1] (', '\u0000Inst a [1] (2 o [x])', 'x'.repeat(100_000)])
      expect(parseAptSimulation(t).pending).toEqual([]);
  });
});

const pkg = (name: string, to: string, security = false, from: string | null = '1'): PendingPackage => ({
  name,
  from,
  to,
  security,
});

/** HA's UpdateEntity.state (components/update/__init__.py) for labels like ours, which AwesomeVersion cannot compare. */
function haState(installed: string, latest: string, skipped: string | null): 'on' | 'off' {
  if (latest === skipped) return 'off';
  if (latest === installed) return 'off';
  // AwesomeVersion: a label with spaces matches no strategy; the compare raises, HA answers "on".
  return 'on';
}

describe('updateLabels and HA skip', () => {
  it('nothing pending: installed = latest = "up to date" (HA: off)', () => {
    const l = updateLabels([]);
    expect(l).toEqual({ installed: UP_TO_DATE, latest: UP_TO_DATE });
    expect(haState(l.installed, l.latest, null)).toBe('off');
  });

  it('pending: labels differ and contain a space, so AwesomeVersion never compares them as versions', () => {
    const l = updateLabels([pkg('curl', '2'), pkg('openssl', '3', true)]);
    expect(l.latest).toMatch(/^2 packages · [0-9a-f]{8}$/);
    expect(l.installed).toMatch(/^installed · [0-9a-f]{8}$/);
    expect(l.installed).not.toBe(l.latest);
    expect(haState(l.installed, l.latest, null)).toBe('on');
  });

  it('Skip hides the current set until it changes: a newer version or another package shows again', () => {
    const set = [pkg('curl', '2'), pkg('openssl', '3', true)];
    const skipped = updateLabels(set).latest; // HA: skipped_version = latest_version
    // The same set, checked again (any order): still hidden.
    const again = updateLabels([...set].reverse());
    expect(again.latest).toBe(skipped);
    expect(haState(again.installed, again.latest, skipped)).toBe('off');
    // One more package, or a newer version of one: shown.
    const more = updateLabels([...set, pkg('tzdata', '2024b')]);
    expect(haState(more.installed, more.latest, skipped)).toBe('on');
    const newer = updateLabels([pkg('curl', '2.1'), pkg('openssl', '3', true)]);
    expect(newer.latest).not.toBe(skipped);
    expect(haState(newer.installed, newer.latest, skipped)).toBe('on');
  });
});

describe('releaseSummary', () => {
  it.each<[string, PendingPackage[], string]>([
    ['none', [], 'No pending package updates.'],
    ['one', [pkg('curl', '2')], '1 package: curl'],
    [
      'security first (already sorted by the parser)',
      parseAptSimulation(fixture('upgrade-debian.txt')).pending.filter((p) => p.name !== 'libcurl4'),
      '3 packages (1 security): openssl, curl, tzdata',
    ],
  ])('%s', (_l, pending, want) => {
    expect(releaseSummary(pending)).toBe(want);
  });

  it('at most 255 characters, ending on whole names and "and N more"', () => {
    const many = Array.from({ length: 300 }, (_, i) => pkg(`package-with-a-long-name-${i}`, '1'));
    const s = releaseSummary(many);
    expect(s.length).toBeLessThanOrEqual(MAX_SUMMARY);
    expect(s).toMatch(/^300 packages: package-with-a-long-name-0, .* and \d+ more$/);
    const real = releaseSummary(parseAptSimulation(fixture('real-debian12.txt')).pending);
    expect(real.length).toBeLessThanOrEqual(MAX_SUMMARY);
    expect(real).toMatch(/^\d+ packages \(\d+ security\): /);
  });
});

describe('updateState', () => {
  const base = {
    manager: 'apt' as const,
    pending: [pkg('openssl', '3', true), pkg('curl', '2')],
    phased: ['systemd'],
    held: [],
    checkedAt: new Date('2026-12-07T08:00:00Z'),
    error: null,
  };
  it('idle: update_percentage null, in_progress false; our fields after HA keys', () => {
    const s = updateState({ ...base, inProgress: false, percentage: 40 });
    expect(Object.keys(s).slice(0, 6)).toEqual([
      'installed_version',
      'latest_version',
      'title',
      'release_summary',
      'in_progress',
      'update_percentage',
    ]);
    expect(s).toMatchObject({ in_progress: false, update_percentage: null, pending: 2, security: 1 });
    expect(s.title).toBe('OS packages (apt)');
  });
  it('installing: the percentage rides along', () => {
    expect(updateState({ ...base, inProgress: true, percentage: 40 })).toMatchObject({
      in_progress: true,
      update_percentage: 40,
    });
  });
  it('the value_template hands HA exactly its keys, each present in the state', () => {
    const pairs = [...UPDATE_VALUE_TEMPLATE.matchAll(/'(\w+)': value_json\.(\w+)/g)].map((m) => [m[1], m[2]]);
    expect(pairs.map(([k]) => k).sort()).toEqual(
      [
        'in_progress',
        'installed_version',
        'latest_version',
        'release_summary',
        'title',
        'update_percentage',
      ].sort(),
    );
    const s = updateState({ ...base, inProgress: false, percentage: null });
    for (const [k, field] of pairs) {
      expect(k).toBe(field);
      expect(s).toHaveProperty(field!);
    }
    for (const k of ['installed_version', 'latest_version', 'title', 'release_summary'])
      expect(typeof s[k]).toBe('string');
  });
});

describe('aptProgress (APT::Status-Fd lines)', () => {
  it.each<[string, number | undefined]>([
    ['dlstatus:1:0.0000:Retrieving file 1 of 4', 0],
    ['dlstatus:3:50.0000:Retrieving file 3 of 4', 25],
    ['dlstatus:4:100:Retrieving file 4 of 4', 50],
    ['pmstatus:openssl:12.5000:Preparing to unpack openssl', 56],
    ['pmstatus:dpkg-exec:87.5:Running dpkg', 94],
    ['pmstatus:tzdata:100:Installed tzdata', 100],
    ['pmstatus:x:250:clamped', 100],
    ['Unpacking openssl (3.0.15-1~deb12u1) over (3.0.14-1~deb12u2) ...', undefined],
    ['pmerror:foo.deb : 33.3: trying to overwrite', undefined],
    ['pmstatus:x:abc:no number', undefined],
    ['', undefined],
  ])('%s → %s', (line, want) => {
    expect(aptProgress(line)).toBe(want);
  });
  it('lastAptProgress takes the last progress line of a chunk', () => {
    expect(lastAptProgress('dlstatus:1:10:a\nnoise\npmstatus:x:50:b\nnoise')).toBe(75);
    expect(lastAptProgress('noise only')).toBeUndefined();
  });
});

it('parseRebootPackages: one name a line, duplicates and junk dropped', () => {
  expect(parseRebootPackages('linux-image-6.1.0-26-amd64\nlibc6\nlibc6\n$(rm -rf /)\n\n')).toEqual([
    'libc6',
    'linux-image-6.1.0-26-amd64',
  ]);
});

describe('config: updates', () => {
  const cfg = (updates: string) =>
    parseConfig(
      `host: pi-1\nactions:\n  apply_updates: { argv: [apt-get, -y, upgrade], sudo: true }\nupdates: ${updates}\n`,
      'test.yml',
      {},
    );
  it('off by default, 6h, apt, upgrade', () => {
    expect(parseConfig('host: pi-1\n', 'test.yml', {}).updates).toEqual({
      enabled: false,
      check: 21_600_000,
      manager: 'apt',
      mode: 'upgrade',
      timeout: 120_000,
      reboot_required_file: '/var/run/reboot-required',
    });
  });
  it.each<[string, RegExp]>([
    [
      '{ enabled: true, install_action: nope }',
      /updates\.install_action.*names no action — add an action nope/s,
    ],
    ['{ enabled: true, check: 10s }', /updates\.check.*at least 1m/s],
    ['{ manager: dnf }', /updates\.manager: must be one of "apt"/],
    ['{ mode: full }', /updates\.mode: must be one of "upgrade", "dist-upgrade"/],
    ['{ reboot_required_file: run/reboot }', /updates\.reboot_required_file.*absolute path/s],
    ['{ enabeld: true }', /enabeld/],
  ])('%s is refused, naming the key and the fix', (yaml, want) => {
    expect(() => cfg(yaml)).toThrow(want);
  });
  it('discovery: an update entity with Install on the action, and the reboot sensor, only when enabled', () => {
    const config = cfg('{ enabled: true, install_action: apply_updates }');
    const msgs = buildDiscovery({
      host: config.host,
      prefix: config.mqtt.prefix,
      discoveryPrefix: config.discovery.prefix,
      version: '0',
      actions: config.actions,
      updates: config.updates,
    });
    const upd = msgs.find((m) => m.topic === 'homeassistant/update/pi-1/os_updates/config');
    expect(upd?.payload).toMatchObject({
      state_topic: 'homelab/pi-1/updates',
      command_topic: 'homelab/pi-1/cmd/apply_updates',
      payload_install: 'PRESS',
      qos: 0,
      default_entity_id: 'update.pi_1_os_updates',
    });
    const reboot = msgs.find((m) => m.topic === 'homeassistant/binary_sensor/pi-1/reboot_required/config');
    expect(reboot?.payload).toMatchObject({
      state_topic: 'homelab/pi-1/reboot_required',
      device_class: 'problem',
    });
    const off = buildDiscovery({
      host: 'pi-1',
      prefix: 'homelab',
      discoveryPrefix: 'homeassistant',
      version: '0',
      actions: config.actions,
      updates: cfg('{ enabled: false }').updates,
    });
    expect(off.some((m) => m.topic.includes('/update/') || m.topic.includes('reboot_required'))).toBe(false);
  });
});
