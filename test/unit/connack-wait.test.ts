/** How long each connection attempt waits for its CONNACK (src/agent/client-options.ts, docs/brokers.md § Reconnects). */
import { describe, expect, it } from 'vitest';
import { CONNACK_WAIT, nextConnackWait } from '../../src/agent/client-options.js';

describe('nextConnackWait', () => {
  it('doubles after each attempt that ran out of time, up to the cap: 10, 20, 40, 80, 80 s', () => {
    const waits = [CONNACK_WAIT.initialMs];
    for (let i = 0; i < 4; i++) waits.push(nextConnackWait(waits.at(-1)!, 'connack_timeout'));
    expect(waits).toEqual([10_000, 20_000, 40_000, 80_000, 80_000]);
  });

  it('goes back to the start after a CONNACK', () => {
    expect(nextConnackWait(80_000, 'connected')).toBe(10_000);
  });

  it('keeps its wait after an attempt that failed otherwise (refused, unreachable): the broker answered', () => {
    expect(nextConnackWait(40_000, 'other')).toBe(40_000);
  });

  it('follows the limits it is given', () => {
    const w = { initialMs: 400, maxMs: 1000 };
    expect(nextConnackWait(400, 'connack_timeout', w)).toBe(800);
    expect(nextConnackWait(800, 'connack_timeout', w)).toBe(1000);
    expect(nextConnackWait(1000, 'connected', w)).toBe(400);
  });
});
