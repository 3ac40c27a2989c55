import { describe, expect, it } from 'vitest';
import { MAX_TS_SKEW_MS, staleness } from '../../src/core/freshness.js';
import { parseDelivery } from '../../src/core/request.js';

const NOW = 1_765_090_800_000;
const MAX_AGE = 300_000;

describe('staleness: ts + ttl, else ts + max_age; no ts, no expiry', () => {
  it.each([
    ['no ts, no ttl (a bare mosquitto_pub): runs whenever it arrives', undefined, undefined, undefined],
    ['ts + ttl in the future', NOW - 5_000, 10, undefined],
    ['exactly at ts + ttl', NOW - 10_000, 10, undefined],
    [
      'one ms past ts + ttl',
      NOW - 10_001,
      10,
      /expired 0 s ago \(ts \+ ttl is in the past: sent 10 s ago with a ttl of 10 s\)/,
    ],
    ['a ttl longer than max_age wins', NOW - 400_000, 600, undefined],
    ['ts without ttl, within max_age', NOW - 299_000, undefined, undefined],
    ['ts without ttl, exactly max_age old', NOW - MAX_AGE, undefined, undefined],
    [
      'ts without ttl, past max_age',
      NOW - 360_000,
      undefined,
      /expired 60 s ago \(ts \+ max_age is in the past: sent 360 s ago without a ttl, and max_age is 300 s\)/,
    ],
    [
      'ts hours old (held in the session through an outage)',
      NOW - 3 * 3600_000,
      60,
      /expired 10740 s ago.*waited at the broker while this host was offline/,
    ],
    ['ts ahead by the allowed skew', NOW + MAX_TS_SKEW_MS, 1, undefined],
    ['ts ahead beyond the skew', NOW + MAX_TS_SKEW_MS + 1000, 3600, /61 s in the future.*fix the clock/],
    ['ts a day ahead without ttl', NOW + 86_400_000, undefined, /86400 s in the future/],
  ] as const)('%s', (_l, ts, ttl, want) => {
    const r = staleness({ ts, ttl }, NOW, MAX_AGE);
    if (want === undefined) return expect(r).toBeUndefined();
    expect(r?.code).toBe('expired');
    expect(r?.error).toMatch(want);
    expect(r?.error).toMatch(/not run|was not run/);
  });
});

describe('parseDelivery: press', () => {
  const deliver = (topicAction: string | undefined, body: unknown) =>
    parseDelivery(
      { topicAction, payload: Buffer.from(JSON.stringify(body)), retained: false },
      NOW,
      () => 'gen-1',
    );

  it('press: true with ts and ttl is a press, keeping its id and stamp', () => {
    const r = deliver('restart_dns', { id: 'p-1', press: true, ts: NOW - 1000, ttl: 60 });
    expect(r.ok && r.request).toMatchObject({ id: 'p-1', press: true, ts: NOW - 1000, ttl: 60, params: {} });
  });

  it('press: false is an ordinary request', () => {
    const r = deliver('restart_dns', { press: false });
    expect(r.ok && r.request.press).toBe(false);
  });

  it.each([
    ['with params', { press: true, params: { unit: 'x' } }],
    ['with a raw command', { press: true, command: 'pihole restartdns' }],
  ])('press %s → invalid_request saying where its params come from', (_l, body) => {
    const r = deliver('restart_dns', body);
    expect(!r.ok && r.rejection.code).toBe('invalid_request');
    expect(!r.ok && r.rejection.error).toMatch(/select\/number entities/);
  });

  it.each([
    ['a string', 'yes'],
    ['a number', 1],
  ])('press as %s → invalid_request', (_l, press) => {
    const r = deliver('restart_dns', { press });
    expect(!r.ok && r.rejection.code).toBe('invalid_request');
  });

  it('an expired press is expired at parse time, before any param store is read', () => {
    const r = deliver('restart_dns', { press: true, ts: NOW - 120_000, ttl: 60 });
    expect(!r.ok && r.rejection.code).toBe('expired');
  });
});
