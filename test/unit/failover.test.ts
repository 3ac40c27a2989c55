/** The failover order and the per-broker MQTT version, as tables (src/core/failover.ts). */
import { describe, expect, it } from 'vitest';
import {
  attemptOutcome,
  brokerUrls,
  CLOSED_WITHOUT_CONNACK,
  Failover,
  redactUrl,
  type Outcome,
} from '../../src/core/failover.js';

const A = 'mqtt://a:1883';
const B = 'mqtt://b:1883';
const C = 'mqtts://c:8883';
const failed: Outcome = { kind: 'failed', reason: 'ECONNREFUSED' };
const lost: Outcome = { kind: 'lost', reason: 'Keepalive timeout' };

/** Runs outcomes through a Failover (jitter 0: the lower bound, base/2) and lists each next attempt as "url v delay". */
function walk(urls: string[], outcomes: (Outcome | 'connected')[]): string[] {
  const f = new Failover(urls, { initialMs: 500, maxMs: 4000 }, () => 0);
  const first = f.first();
  const seen = [`${first.url} v${first.protocolVersion} ${first.delayMs}`];
  for (const o of outcomes) {
    if (o === 'connected') {
      f.connected();
      continue;
    }
    const a = f.next(o);
    seen.push(`${a.url} v${a.protocolVersion} ${a.delayMs}${a.fallback ? ` (${a.fallback})` : ''}`);
  }
  return seen;
}

describe('failover order', () => {
  it.each<[string, string[], (Outcome | 'connected')[], string[]]>([
    [
      'one broker: retries it with growing backoff, capped',
      [A],
      [failed, failed, failed, failed, failed],
      [`${A} v5 0`, `${A} v5 250`, `${A} v5 500`, `${A} v5 1000`, `${A} v5 2000`, `${A} v5 2000`],
    ],
    [
      'one broker, lost: back after the first backoff step',
      [A],
      ['connected', lost, failed],
      [`${A} v5 0`, `${A} v5 250`, `${A} v5 250`],
    ],
    [
      'a failed attempt moves on at once; a failed round backs off and starts again at the first',
      [A, B],
      [failed, failed, failed, failed],
      [`${A} v5 0`, `${B} v5 0`, `${A} v5 250`, `${B} v5 0`, `${A} v5 500`],
    ],
    [
      'a connection resets the backoff',
      [A, B],
      [failed, failed, failed, failed, 'connected', lost, failed],
      [`${A} v5 0`, `${B} v5 0`, `${A} v5 250`, `${B} v5 0`, `${A} v5 500`, `${B} v5 250`, `${A} v5 0`],
    ],
    [
      'lost on the first: the next one, jittered (the fleet does not stampede)',
      [A, B, C],
      ['connected', lost],
      [`${A} v5 0`, `${B} v5 250`],
    ],
    [
      'lost on the middle one: the others in list order, the dead one last, then a fresh round from the first',
      [A, B, C],
      [failed, 'connected', lost, failed, failed, failed],
      [`${A} v5 0`, `${B} v5 0`, `${A} v5 250`, `${C} v5 0`, `${B} v5 0`, `${A} v5 250`],
    ],
  ])('%s', (_name, urls, outcomes, expected) => {
    expect(walk(urls, outcomes)).toEqual(expected);
  });
});

describe('MQTT version per broker', () => {
  it('a refusal of MQTT 5 retries the same broker at once with 3.1.1, and that broker keeps 3.1.1', () => {
    expect(walk([A, B], [{ kind: 'refused_v5' }, 'connected', lost, failed])).toEqual([
      `${A} v5 0`,
      `${A} v4 0 (refused)`,
      `${B} v5 250`,
      `${A} v4 0`,
    ]);
  });

  it('a refusal on one broker does not make another speak 3.1.1', () => {
    expect(walk([A, B], [failed, { kind: 'refused_v5' }, 'connected', lost])).toEqual([
      `${A} v5 0`,
      `${B} v5 0`,
      `${B} v4 0 (refused)`,
      `${A} v5 250`,
    ]);
  });

  it('a close without CONNACK tries 3.1.1 for that connection only: the next connection to it tries 5 again', () => {
    expect(
      walk([A], [{ kind: 'closed_without_connack' }, 'connected', lost, { kind: 'closed_without_connack' }]),
    ).toEqual([
      `${A} v5 0`,
      `${A} v4 0 (closed_without_connack)`,
      `${A} v5 250`,
      `${A} v4 0 (closed_without_connack)`,
    ]);
  });

  it('a close without CONNACK on 3.1.1 too is a plain failure: the next broker, with 5', () => {
    expect(walk([A, B], [{ kind: 'closed_without_connack' }, { kind: 'closed_without_connack' }])).toEqual([
      `${A} v5 0`,
      `${A} v4 0 (closed_without_connack)`,
      `${B} v5 0`,
    ]);
  });

  it('a refusal of 3.1.1 (bad credentials share its return codes) is a plain failure', () => {
    expect(walk([A, B], [{ kind: 'refused_v5' }, { kind: 'refused_v5' }])).toEqual([
      `${A} v5 0`,
      `${A} v4 0 (refused)`,
      `${B} v5 0`,
    ]);
  });
});

describe('helpers', () => {
  it('brokerUrls: one URL or a list, always a list in the given order', () => {
    expect(brokerUrls(A)).toEqual([A]);
    expect(brokerUrls([B, A])).toEqual([B, A]);
  });

  it('redactUrl masks credentials', () => {
    expect(redactUrl('mqtt://user:secret@host:1883')).toBe('mqtt://***@host:1883');
    expect(redactUrl(A)).toBe(A);
  });

  it('jitter keeps each delay within [base/2, base]', () => {
    for (const [r, delay] of [
      [0, 500],
      [0.5, 750],
      [0.999, 1000],
    ] as const) {
      const f = new Failover([A], { initialMs: 1000, maxMs: 1000 }, () => r);
      f.first();
      expect(f.next(failed).delayMs).toBe(delay);
    }
    expect(() => new Failover([])).toThrow(/at least one/);
  });
});

// The one MQTT 5 → 3.1.1 rule, shared by the agent's session and the CLI's one-shot connects.
describe('attemptOutcome', () => {
  it.each([
    [0x84, { kind: 'refused_v5' }],
    [1, { kind: 'refused_v5' }],
    [CLOSED_WITHOUT_CONNACK, { kind: 'closed_without_connack' }],
    [0x86, { kind: 'failed', reason: 'why' }],
    [5, { kind: 'failed', reason: 'why' }],
    ['ECONNREFUSED', { kind: 'failed', reason: 'why' }],
    [undefined, { kind: 'failed', reason: 'why' }],
  ])('code %s', (code, want) => {
    expect(attemptOutcome(code, 'why')).toEqual(want);
  });
});
