import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { StaggerCoordinator } from '../../src/agent/stagger.js';
import type { StaggerConfig, StaggerItem } from '../../src/agent/stagger-turns.js';
import { topicMatches } from '../../src/broker/acl.js';
import { fleetWriteFilters, lastTopic, parseFleetTopic } from '../../src/core/fleet-topics.js';
import {
  MAX_CLOCK_SKEW_MS,
  dueAt,
  groupLast,
  heldBy,
  holdLapsed,
  newer,
  parseJson,
  readSavedStagger,
  whyIgnored,
  sameRecord,
  staggerRecordSchema,
  winner,
  type Claim,
  type StaggerRecord,
} from '../../src/core/stagger.js';
import { tempDir } from '../helpers/fixtures.js';
import { until } from '../helpers/wait.js';

const rec = (host: string, at: string, extra: Partial<StaggerRecord> = {}): StaggerRecord => ({
  host,
  action: 'restart_dns',
  id: `${host}-1`,
  at,
  ...extra,
});
const claim = (host: string, at: string): Claim => ({ host, action: 'restart_dns', id: `${host}-1`, at });
const T = '2026-11-22T10:00:00.000Z';
const T1 = '2026-11-22T10:00:01.000Z';

describe('winner: the earliest claim, then the lowest host id — the same for every agent', () => {
  it.each<[string, Claim[], string]>([
    ['single', [claim('b', T)], 'b'],
    ['earlier wins', [claim('a', T1), claim('b', T)], 'b'],
    ['tie → lowest host', [claim('pihole-2', T), claim('pihole-1', T)], 'pihole-1'],
    ['order of arrival does not matter', [claim('pihole-1', T), claim('pihole-2', T)], 'pihole-1'],
    ['three', [claim('c', T1), claim('b', T), claim('a', T1)], 'b'],
  ])('%s', (_l, claims, host) => {
    expect(winner(claims)?.host).toBe(host);
    expect(winner([...claims].reverse())?.host).toBe(host);
  });
  it('no claims, no winner', () => expect(winner([])).toBeUndefined());
});

describe('newer: the later record of a group', () => {
  it.each<[string, StaggerRecord | undefined, StaggerRecord | undefined, string | undefined]>([
    ['one missing', undefined, rec('a', T), 'a'],
    ['later start wins', rec('a', T1), rec('b', T), 'a'],
    ['same start → higher host (deterministic)', rec('a', T), rec('b', T), 'b'],
    ['none', undefined, undefined, undefined],
  ])('%s', (_l, a, b, host) => {
    expect(newer(a, b)?.host).toBe(host);
    expect(newer(b, a)?.host).toBe(host);
  });
  it('the released state of the same run is its later state', () => {
    const held = rec('a', T, { released: false });
    const released = rec('a', T, { released: true });
    expect(newer(held, released)).toBe(released);
    expect(newer(released, held)).toBe(released);
    expect(sameRecord(held, released)).toBe(false);
    expect(sameRecord(released, rec('a', T))).toBe(true);
  });
});

describe('dueAt and heldBy', () => {
  const now = Date.parse(T);
  it.each<[string, StaggerRecord | undefined, number, number]>([
    ['no record: now', undefined, 1000, now],
    ['recent run: its start + interval', rec('a', '2026-11-22T09:59:50.000Z'), 30_000, now + 20_000],
    ['old run: now', rec('a', '2026-11-22T09:00:00.000Z'), 30_000, now],
  ])('%s', (_l, last, interval, due) => expect(dueAt(last, interval, now)).toBe(due));

  it('a run that has not passed its health check holds the group for everyone but its host', () => {
    const held = rec('pihole-1', T, { released: false });
    expect(heldBy(held, 'pihole-2')).toMatch(/held: the run of restart_dns on pihole-1/);
    expect(heldBy(held, 'pihole-1')).toBeUndefined();
    expect(heldBy(rec('pihole-1', T), 'pihole-2')).toBeUndefined();
    expect(heldBy(undefined, 'pihole-2')).toBeUndefined();
  });
});

describe('fleet topics and payloads', () => {
  it.each<[string, ReturnType<typeof parseFleetTopic>]>([
    ['homelab/_fleet/stagger/dns/last/pihole-1', { kind: 'last', group: 'dns', host: 'pihole-1' }],
    ['homelab/_fleet/stagger/dns/claim/pihole-1', { kind: 'claim', group: 'dns', host: 'pihole-1' }],
    // The shared group record of the previous layout is nobody's: not read any more.
    ['homelab/_fleet/stagger/dns', undefined],
    ['homelab/_fleet/stagger/dns/last/pihole-1/x', undefined],
    ['homelab/_fleet/stagger/dns/last', undefined],
    ['homelab/_fleet/stagger/dns/member/pihole-2', { kind: 'member', group: 'dns', host: 'pihole-2' }],
    ['homelab/_fleet/stagger/DNS', undefined],
    ['homelab/_fleet/stagger/dns/other/x', undefined],
    ['homelab/_fleet/stagger/dns/claim/Bad Host', undefined],
    ['homelab/pihole-1/status', undefined],
  ])('%s', (topic, expected) => expect(parseFleetTopic('homelab', topic)).toEqual(expected));

  it.each([
    ['{"host":"a","action":"restart_dns","id":"x1","at":"2026-11-22T10:00:00.000Z"}', true],
    ['{"host":"a","action":"restart_dns","id":"x1","at":"yesterday"}', false],
    ['{"host":"A B","action":"restart_dns","id":"x1","at":"2026-11-22T10:00:00.000Z"}', false],
    ['not json', false],
    ['', false],
  ])('record %s valid: %s', (text, ok) =>
    expect(parseJson(staggerRecordSchema, text) !== undefined).toBe(ok),
  );
});

describe('who wrote a fleet record: the last level of its topic, and nothing else', () => {
  const now = Date.parse(T);
  it.each<[string, string, { host: string; at?: string }, RegExp | undefined]>([
    ['its own record', 'a', { host: 'a', at: T }, undefined],
    ['a member record (no date)', 'a', { host: 'a' }, undefined],
    [
      'payload names another host (a foreign writer)',
      'evil',
      { host: 'a', at: T },
      /names host a .* evil's topic/,
    ],
    ['dated 2999', 'a', { host: 'a', at: '2999-01-01T00:00:00.000Z' }, /in the future/],
    [
      'just inside the clock skew',
      'a',
      { host: 'a', at: new Date(now + MAX_CLOCK_SKEW_MS).toISOString() },
      undefined,
    ],
    [
      'just beyond it',
      'a',
      { host: 'a', at: new Date(now + MAX_CLOCK_SKEW_MS + 1).toISOString() },
      /60 s in the future/,
    ],
    ['long ago is fine', 'a', { host: 'a', at: '2001-01-01T00:00:00.000Z' }, undefined],
  ])('%s', (_l, topicHost, payload, why) => {
    const got = whyIgnored(topicHost, payload, now);
    if (why) expect(got).toMatch(why);
    else expect(got).toBeUndefined();
  });

  it.each<[string, string, boolean]>([
    ['its own last run', 'homelab/_fleet/stagger/dns/last/a', true],
    ['its own claim', 'homelab/_fleet/stagger/dns/claim/a', true],
    ['its own membership', 'homelab/_fleet/stagger/dns/member/a', true],
    ['a per-host fleet topic one level down (published groups)', 'homelab/_fleet/groups/a', true],
    ['two levels down', 'homelab/_fleet/groups/dns/a', true],
    ["another host's last run", 'homelab/_fleet/stagger/dns/last/b', false],
    ["another host's membership", 'homelab/_fleet/stagger/dns/member/b', false],
    ['the shared group record of the previous layout', 'homelab/_fleet/stagger/dns', false],
    ['a host id in the middle is not the writer', 'homelab/_fleet/stagger/a/last/b', false],
    ['deeper than any fleet topic', 'homelab/_fleet/x/y/z/w/a', false],
    ['another prefix', 'other/_fleet/stagger/dns/last/a', false],
  ])('agent a may write %s: %s', (_l, topic, ok) => {
    expect(fleetWriteFilters('homelab', 'a').some((f) => topicMatches(f, topic))).toBe(ok);
  });

  it('every topic an agent builds for itself is one its ACL lets it write, and parses back to it', () => {
    const t = lastTopic('homelab', 'dns', 'pihole-1');
    expect(fleetWriteFilters('homelab', 'pihole-1').some((f) => topicMatches(f, t))).toBe(true);
    expect(parseFleetTopic('homelab', t)).toEqual({ kind: 'last', group: 'dns', host: 'pihole-1' });
  });
});

describe("the group's last run and the hold", () => {
  it.each<[string, StaggerRecord[], string | undefined]>([
    ['none', [], undefined],
    ['the newest of the members’ own records', [rec('a', T), rec('b', T1)], 'b'],
    ['whatever order', [rec('b', T1), rec('a', T)], 'b'],
  ])('groupLast: %s', (_l, records, host) => expect(groupLast(records)?.host).toBe(host));

  const held = rec('b', T, { released: false });
  it.each<[string, { online: boolean; downForMs: number }, boolean]>([
    ['holder online: holds, however long', { online: true, downForMs: 0 }, false],
    ['holder offline for less than max_hold: holds', { online: false, downForMs: 59_000 }, false],
    ['holder offline for longer than max_hold: lapses', { online: false, downForMs: 61_000 }, true],
  ])('holdLapsed: %s', (_l, holder, lapsed) => {
    const note = holdLapsed(held, holder, 60_000);
    expect(note !== undefined).toBe(lapsed);
    if (note) expect(note).toMatch(/b has not been online for 61 s \(more than stagger.max_hold, 60 s\)/);
  });
});

describe('stagger.json of this layout and of the previous one', () => {
  const now = Date.parse(T1);
  const FUTURE = '2999-01-01T00:00:00.000Z';
  it.each<[string, unknown, Record<string, string[]>, number]>([
    [
      'this layout',
      { version: 2, groups: { dns: { a: rec('a', T), b: rec('b', T) } } },
      { dns: ['a', 'b'] },
      0,
    ],
    ['this layout, a record dated 2999', { version: 2, groups: { dns: { b: rec('b', FUTURE) } } }, {}, 1],
    ['this layout, filed under another host', { version: 2, groups: { dns: { a: rec('b', T) } } }, {}, 1],
    ['previous layout, its own record: kept', { dns: rec('a', T) }, { dns: ['a'] }, 0],
    ['previous layout, a peer’s record: dropped', { dns: rec('b', T) }, {}, 1],
    ['previous layout, its own dated 2999: dropped', { dns: rec('a', FUTURE) }, {}, 1],
    ['previous layout, garbage', { dns: { at: 'soon' } }, {}, 1],
    [
      'this layout, a group named constructor',
      { version: 2, groups: { constructor: { a: rec('a', T) } } },
      { constructor: ['a'] },
      0,
    ],
    ['no file', undefined, {}, 0],
    ['a list', [1, 2], {}, 1],
  ])('%s', (_l, data, hosts, dropped) => {
    const got = readSavedStagger(data, 'a', now);
    expect(Object.fromEntries(Object.entries(got.groups).map(([g, h]) => [g, Object.keys(h)]))).toEqual(
      hosts,
    );
    expect(got.dropped).toHaveLength(dropped);
  });
});

// The coordinator against hostile fleet messages (docs/stagger.md § Failure cases): each case feeds
// what an account with write access to the fleet topics could retain, then asks for a run. A real
// state_dir and real timers; the test plays the broker (messages in, publishes recorded).
const Y2999 = '2999-01-01T00:00:00.000Z';
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const recText = (host: string, at: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ host, action: 'restart_dns', id: `${host}-1`, at, ...extra });
const G = '_fleet/stagger/dns';

function fleet(opts: { stagger?: Record<string, unknown>; state?: unknown } = {}) {
  const dir = tempDir();
  if (opts.state !== undefined)
    writeFileSync(
      path.join(dir, 'stagger.json'),
      typeof opts.state === 'string' ? opts.state : JSON.stringify(opts.state),
    );
  const cfg = {
    group: 'dns',
    interval: 60_000,
    settle: 30,
    require_peers_online: false,
    max_hold: 3_600_000,
    ...opts.stagger,
  } as StaggerConfig;
  const published: { topic: string; payload: string }[] = [];
  const ran: { id: string; note: string | undefined }[] = [];
  const scheduled: { id: string; runAt: Date; reason: string | undefined }[] = [];
  const logs: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => logs.push(s) });
  const c = new StaggerCoordinator<StaggerItem>(
    { prefix: 'homelab', host: 'a', stateDir: dir, groups: [['dns', cfg]] },
    {
      publish: (topic, payload) => {
        published.push({ topic, payload });
        // As a broker does, the coordinator's own claim comes back to it: it decides only then
        // (docs/stagger.md § The protocol, step 6).
        if (topic.includes('/claim/')) setImmediate(() => c.onMessage(topic, Buffer.from(payload)));
        return Promise.resolve();
      },
    },
    {
      run: (item, note) => ran.push({ id: item.id, note }),
      scheduled: (item, runAt, reason) => scheduled.push({ id: item.id, runAt, reason }),
      expire: () => undefined,
    },
    log,
    () => true,
  );
  c.open();
  const send = (topic: string, payload: unknown) =>
    c.onMessage(
      `homelab/${topic}`,
      Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
    );
  const submit = (id = 'req-1') =>
    c.submit({ id, action: 'restart_dns', stagger: cfg, acceptedAt: Date.now() });
  const state = () => {
    const f = path.join(dir, 'stagger.json');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  };
  return { c, dir, published, ran, scheduled, logs, send, submit, state };
}

type Msgs = [string, unknown][];
const member = (h: string): [string, unknown] => [`${G}/member/${h}`, { host: h }];

describe('poisoned fleet records do not block the group, are not saved and are not republished', () => {
  // Each attack is written where the old layout read it (the shared group topic) and where the new
  // one reads records (a host's own topic), so the test holds whichever layout the agent uses.
  it.each<[string, Record<string, unknown>, () => Msgs, string[]]>([
    [
      'a record dated in the year 2999 (even on a member’s own topic)',
      {},
      () => [member('b'), [G, recText('b', Y2999)], [`${G}/last/b`, recText('b', Y2999)]],
      ['2999'],
    ],
    [
      'a record whose topic host and payload host differ (a foreign writer)',
      {},
      () => [
        member('b'),
        member('evil'),
        [G, recText('b', ago(1000))],
        [`${G}/last/evil`, recText('b', ago(1000))],
        [`${G}/last/a`, recText('b', ago(1000))],
      ],
      ['"b"', 'evil'],
    ],
    [
      'a record from a host that is not a member',
      {},
      () => [
        [G, recText('ghost', ago(1000))],
        [`${G}/last/ghost`, recText('ghost', ago(1000))],
      ],
      ['ghost'],
    ],
    [
      'ghost members: a member record naming another host, or no member record at all',
      { require_peers_online: true },
      () => [
        [`${G}/member/ghost`, { host: 'a' }],
        [`${G}/member/ghost2`, 'yes'],
        [`${G}/member/ghost3`, { host: 'b' }],
        ['ghost/status', 'offline'],
        ['ghost2/status', 'offline'],
      ],
      ['ghost'],
    ],
    [
      'a held record (released: false) from a member that has been offline longer than max_hold',
      { max_hold: 300 },
      () => [
        member('dead'),
        ['dead/status', 'offline'],
        [G, recText('dead', ago(120_000), { released: false })],
        [`${G}/last/dead`, recText('dead', ago(120_000), { released: false })],
      ],
      [],
    ],
    [
      'a held record from a member that was never seen online (no status at all)',
      { max_hold: 300 },
      () => [
        member('gone'),
        [G, recText('gone', ago(120_000), { released: false })],
        [`${G}/last/gone`, recText('gone', ago(120_000), { released: false })],
      ],
      [],
    ],
  ])('%s', async (_label, stagger, msgs, forbidden) => {
    const f = fleet({ stagger });
    f.c.onConnect();
    for (const [t, p] of msgs()) f.send(t, p);
    f.submit();
    try {
      await until(() => f.ran.length === 1, 5000, 'the run');
    } finally {
      f.c.stop();
    }
    expect(f.ran[0]!.id).toBe('req-1');
    for (const p of f.published) {
      expect(p.topic, 'every fleet topic it writes ends in its host id').toMatch(/\/a$/);
      for (const s of forbidden) expect(p.payload).not.toContain(s);
    }
    for (const s of forbidden) expect(f.state()).not.toContain(s);
  });

  it('a held record of a member that is online keeps holding; once it goes offline past max_hold the run goes, saying why', async () => {
    const f = fleet({ stagger: { max_hold: 300, interval: 1000 } });
    f.c.onConnect();
    for (const [t, p] of [
      member('b'),
      ['b/status', 'online'],
      [G, recText('b', ago(120_000), { released: false })],
      [`${G}/last/b`, recText('b', ago(120_000), { released: false })],
    ] as Msgs)
      f.send(t, p);
    f.submit();
    try {
      await until(() => f.scheduled.some((s) => /held/.test(s.reason ?? '')), 5000, 'held');
      expect(f.ran).toEqual([]);
      f.send('b/status', 'offline');
      await until(() => f.ran.length === 1, 5000, 'the run once the holder is gone');
    } finally {
      f.c.stop();
    }
    expect(f.ran[0]!.note).toMatch(/b has not been online for .* stagger.max_hold/);
  });

  it('a record its owner deleted is forgotten, and nobody republishes it after a broker restart', async () => {
    // This host ran 20 s ago (a state file of the previous layout); b ran 10 s ago, then cleared it.
    const f = fleet({ stagger: { interval: 15_000 }, state: { dns: JSON.parse(recText('a', ago(20_000))) } });
    f.c.onConnect();
    f.send(...member('b'));
    f.send(G, recText('b', ago(10_000)));
    f.send(`${G}/last/b`, recText('b', ago(10_000)));
    await until(() => f.state().includes('"b"'), 5000, "b's record saved");
    f.send(G, '');
    f.send(`${G}/last/b`, '');
    // The broker restarts, empty: each member puts back only its own record.
    f.c.onDisconnect();
    const before = f.published.length;
    f.c.onConnect();
    try {
      await until(
        () => f.published.slice(before).some((p) => p.payload.includes('"a-1"')),
        5000,
        'its own record put back',
      );
      for (const p of f.published.slice(before)) {
        expect(p.topic).toMatch(/\/a$/);
        expect(p.payload).not.toContain('"b"');
      }
      expect(f.state()).not.toContain('"b"');
      f.submit();
      await until(() => f.ran.length === 1, 5000, 'the run: b’s deleted record no longer spaces it');
    } finally {
      f.c.stop();
    }
  });

  it('a forged record on its own topic is ignored, and its true record is put back there', () => {
    const f = fleet({ state: { version: 2, groups: { dns: { a: JSON.parse(recText('a', ago(5000))) } } } });
    f.c.onConnect();
    f.send(`${G}/last/a`, recText('b', ago(1000)));
    f.send(`${G}/last/a`, recText('a', Y2999));
    f.c.stop();
    const putBack = f.published.filter((p) => p.topic === `homelab/${G}/last/a`);
    expect(putBack).toHaveLength(2);
    for (const p of putBack) expect(JSON.parse(p.payload)).toMatchObject({ host: 'a', id: 'a-1' });
    expect(f.state()).not.toContain('2999');
  });

  it('ignored records are logged once, not once per message', async () => {
    const f = fleet();
    f.c.onConnect();
    f.send(...member('b'));
    for (let i = 0; i < 50; i++) f.send(`${G}/last/b`, recText('b', Y2999));
    f.c.stop();
    const lines = f.logs.filter((l) => l.includes('ignor'));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/future/);
  });
});

describe('state files of the previous layout', () => {
  it.each<[string, unknown, 'runs' | 'waits']>([
    ['its own last run: still spaces the next one', { dns: JSON.parse(recText('a', ago(5000))) }, 'waits'],
    [
      'a record dated 2999 that an older version saved: dropped',
      { dns: JSON.parse(recText('b', Y2999)) },
      'runs',
    ],
    ['a record of its own dated 2999: dropped', { dns: JSON.parse(recText('a', Y2999)) }, 'runs'],
    ['garbage in an entry', { dns: { host: 'a', at: 'yesterday' } }, 'runs'],
    ['not JSON at all', '{{{', 'runs'],
  ])('%s', async (_label, state, expected) => {
    const f = fleet({ state });
    f.c.onConnect();
    f.submit();
    try {
      if (expected === 'runs') await until(() => f.ran.length === 1, 5000, 'the run');
      else await until(() => f.scheduled.length === 1, 5000, 'scheduled');
    } finally {
      f.c.stop();
    }
    if (expected === 'waits') expect(f.ran).toEqual([]);
    expect(f.state()).not.toContain('2999');
  });
});
