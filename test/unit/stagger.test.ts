import { describe, expect, it } from 'vitest';
import {
  dueAt,
  heldBy,
  newer,
  parseFleetTopic,
  parseJson,
  sameRecord,
  staggerRecordSchema,
  winner,
  type Claim,
  type StaggerRecord,
} from '../../src/core/stagger.js';

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
    ['homelab/_fleet/stagger/dns', { kind: 'record', group: 'dns' }],
    ['homelab/_fleet/stagger/dns/claim/pihole-1', { kind: 'claim', group: 'dns', host: 'pihole-1' }],
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
