/**
 * The Running sensor's publishing rules (src/agent/running.ts): a run shows after a moment, messages
 * are rate-limited with the latest state winning, the end is published, and nothing goes out while
 * disconnected — the connect publishes the state then. Fake timers: the intervals are the subject.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ANNOUNCE_MS, MIN_INTERVAL_MS, REFRESH_MS, RunningSensor } from '../../src/agent/running.js';
import { parseConfig } from '../../src/config/load.js';
import { runningStateSchema, type RunningState } from '../../src/core/running.js';
import { silentLogger } from '../../src/log.js';

const config = parseConfig('host: h1\nactions:\n  up: { argv: [uptime] }\n', '/nonexistent/agent.yaml', {});
let sent: { at: number; state: RunningState; retain: boolean }[];
let connected: boolean;
let sensor: RunningSensor;
const run = { id: 'r1', steps: 3 };

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse('2026-12-07T10:00:00.000Z') });
  sent = [];
  connected = true;
  sensor = new RunningSensor(
    config,
    {
      publish: (topic, payload, { retain }) => {
        expect(topic).toBe('homelab/h1/running');
        sent.push({ at: Date.now(), state: runningStateSchema.parse(JSON.parse(payload)), retain });
        return Promise.resolve();
      },
    },
    silentLogger(),
    () => connected,
  );
});
afterEach(() => {
  sensor.stop();
  vi.useRealTimers();
});

describe('the Running sensor', () => {
  it('publishes idle, retained, at connect', async () => {
    await sensor.onConnect();
    expect(sent).toMatchObject([{ retain: true, state: { label: 'idle', id: null } }]);
  });

  it('a run that starts right after a message shows once the rate limit allows', async () => {
    await sensor.onConnect();
    sensor.started('up', run);
    await vi.advanceTimersByTimeAsync(MIN_INTERVAL_MS);
    expect(sent.at(-1)).toMatchObject({ at: sent[0]!.at + MIN_INTERVAL_MS, state: { id: 'r1' } });
  });

  it('a quick run never shows', async () => {
    await sensor.onConnect();
    sensor.started('up', run);
    await vi.advanceTimersByTimeAsync(200);
    sensor.ended('up', run);
    await vi.advanceTimersByTimeAsync(10 * MIN_INTERVAL_MS);
    expect(sent).toHaveLength(1);
  });

  it(`a long run shows after ${ANNOUNCE_MS} ms; its output at most every ${MIN_INTERVAL_MS} ms, the last line winning`, async () => {
    await sensor.onConnect();
    // Past the rate limit of the connect's message.
    await vi.advanceTimersByTimeAsync(MIN_INTERVAL_MS);
    const t0 = Date.now();
    sensor.started('up', run);
    sensor.step('up', 1, run);
    await vi.advanceTimersByTimeAsync(ANNOUNCE_MS - 1);
    expect(sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent.at(-1)).toMatchObject({ at: t0 + ANNOUNCE_MS, state: { id: 'r1', label: 'up (step 1/3)' } });
    // A burst of output: one message at most every MIN_INTERVAL_MS.
    for (let i = 0; i < 50; i++) {
      sensor.output('up', Buffer.from(`line ${i}\n`), run);
      await vi.advanceTimersByTimeAsync(100);
    }
    const during = sent.slice(2);
    for (const [i, m] of during.entries())
      expect(m.at - (i === 0 ? sent[1]!.at : during[i - 1]!.at)).toBeGreaterThanOrEqual(MIN_INTERVAL_MS);
    expect(during.length).toBeLessThanOrEqual(Math.ceil(5000 / MIN_INTERVAL_MS));
    await vi.advanceTimersByTimeAsync(MIN_INTERVAL_MS);
    expect(sent.at(-1)!.state.line).toBe('line 49');
    // The end is published, rate limit permitting.
    sensor.ended('up', run);
    await vi.advanceTimersByTimeAsync(MIN_INTERVAL_MS);
    expect(sent.at(-1)!.state).toMatchObject({ label: 'idle', running: 0 });
  });

  it(`a silent long run has its elapsed time refreshed every ${REFRESH_MS / 1000} s, no more`, async () => {
    await sensor.onConnect();
    await vi.advanceTimersByTimeAsync(MIN_INTERVAL_MS);
    sensor.started('up', run);
    await vi.advanceTimersByTimeAsync(ANNOUNCE_MS);
    const before = sent.length;
    await vi.advanceTimersByTimeAsync(3 * REFRESH_MS);
    expect(sent.length - before).toBe(3);
    expect(sent.at(-1)!.state.elapsed_s).toBeGreaterThanOrEqual(90);
  });

  it('publishes nothing while disconnected; the next connect publishes the state as it is', async () => {
    connected = false;
    sensor.started('up', run);
    await vi.advanceTimersByTimeAsync(5 * MIN_INTERVAL_MS);
    expect(sent).toEqual([]);
    connected = true;
    await sensor.onConnect();
    expect(sent).toMatchObject([{ state: { id: 'r1', running: 1 } }]);
  });
});
