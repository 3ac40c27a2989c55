/** What `homelab-cmd status` makes of other hosts' text and retained messages (cli/status-rows.ts). */
import { describe, expect, it } from 'vitest';
import { applyMessage, printable, type HostRow } from '../../src/cli/status-rows.js';

describe('printable', () => {
  const hiddenCodePoints = [
    ...Array.from({ length: 0x20 }, (_, i) => i),
    ...Array.from({ length: 0xa0 - 0x7f }, (_, i) => 0x7f + i),
    0x061c,
    0x200b,
    0x200c,
    0x200d,
    0x200e,
    0x200f,
    0x2028,
    0x2029,
    0x202a,
    0x202b,
    0x202c,
    0x202d,
    0x202e,
    0x2060,
    0x2066,
    0x2067,
    0x2068,
    0x2069,
    0xfeff,
  ];
  it.each(hiddenCodePoints.map((c) => [c.toString(16).padStart(4, '0'), c]))('removes U+%s', (_hex, c) => {
    expect(printable(`a${String.fromCodePoint(c)}b`)).toBe('ab');
  });

  it('keeps ordinary text, accents, CJK and emoji', () => {
    expect(printable('pihole-1 Ünïcode 日本 🙂 ok')).toBe('pihole-1 Ünïcode 日本 🙂 ok');
  });

  it('cuts long text, never inside a surrogate pair', () => {
    expect(printable('x'.repeat(100), 10)).toBe(`${'x'.repeat(9)}…`);
    expect(printable('🙂'.repeat(20), 5)).toBe(`${'🙂'.repeat(4)}…`);
    expect(printable('exactly10!', 10)).toBe('exactly10!');
  });
});

describe('applyMessage', () => {
  const apply = (messages: [string, string][]) => {
    const rows = new Map<string, HostRow>();
    for (const [t, p] of messages) applyMessage(rows, 'homelab', t, Buffer.from(p));
    return rows;
  };

  it('a later good heartbeat clears the error of a bad one; an empty payload clears the heartbeat', () => {
    const hb = JSON.stringify({
      ts: 't',
      load: [1, 2, 3],
      memory: { used: 1, total: 2 },
      disk: { used: 1, total: 2 },
      running: 0,
    });
    const rows = apply([
      ['homelab/h/heartbeat', '{'],
      ['homelab/h/heartbeat', hb],
    ]);
    expect(rows.get('h')).toMatchObject({ heartbeat: { load: [1, 2, 3] } });
    expect(rows.get('h')?.errors).toBeUndefined();
    expect(
      apply([
        ['homelab/h/heartbeat', hb],
        ['homelab/h/heartbeat', ''],
      ]).get('h')?.heartbeat,
    ).toBeUndefined();
  });

  it('ignores topics that are not per-host status, heartbeat or result, and the fleet', () => {
    const rows = apply([
      ['homelab/_fleet/status', 'online'],
      ['homelab/h/result/id-1', '{}'],
      ['other/h/status', 'online'],
    ]);
    expect([...rows.keys()]).toEqual([]);
  });

  it('never throws, whatever the payload', () => {
    for (const p of ['null', '1', '"x"', 'true', '[]', '{"load":null}', '\u0000', '{"__proto__":{"x":1}}'])
      expect(() =>
        apply([
          ['homelab/h/heartbeat', p],
          ['homelab/h/result', p],
        ]),
      ).not.toThrow();
  });
});
