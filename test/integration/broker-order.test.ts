/**
 * Nothing a live subscriber should get is lost to aedes' duplicate filter (src/broker/emit-order.ts):
 * a retained message followed at once by another one — on the same connection or another, on an
 * in-memory or an on-disk broker — reaches the subscriber, and so do both in the order published
 * where they share a connection and a QoS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningBroker } from '../../src/broker/broker.js';
import { tempDir } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { until } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

describe.each([
  ['in memory', false],
  ['on disk', true],
])('a retained message followed by another, broker %s', (_name, disk) => {
  let broker: RunningBroker;
  let a: TestClient;
  let b: TestClient;
  let spy: TestClient;
  const seen: string[] = [];

  beforeAll(async () => {
    broker = await startTestBroker(disk ? { stateDir: tempDir('hc-order-') } : {});
    const url = `mqtt://127.0.0.1:${broker.port}`;
    a = await TestClient.connect(url);
    b = await TestClient.connect(url);
    spy = await TestClient.connect(url, { protocolVersion: 5 });
    spy.client.on('message', (_t, payload) => seen.push(payload.toString()));
    // Retain As Published, as the agent subscribes: the retain flag stays on live deliveries.
    await spy.client.subscribeAsync('t/#', { qos: 1, rap: true, rh: 1 } as never);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a.end(), b.end(), spy.end()]);
    await broker.close();
  });

  const cases: [string, boolean[], 0 | 1][] = [
    ['retained, live (QoS 0)', [true, false], 0],
    ['live, retained, live (QoS 0)', [false, true, false], 0],
    ['retained, live × 3 (QoS 0)', [true, false, false, false], 0],
    ['retained, live (QoS 1)', [true, false], 1],
  ];
  it.each(cases)('%s on one connection: every message arrives, in order', async (name, retain, qos) => {
    seen.length = 0;
    const sent = retain.map((_r, i) => `${name}-${i}`);
    await Promise.all(sent.map((m, i) => a.client.publishAsync('t/x', m, { qos, retain: retain[i] })));
    await a.client.publishAsync('t/end', `end ${name}`, { qos: 1 });
    await until(() => seen.includes(`end ${name}`), 10_000, `the end marker of ${name}`);
    expect(seen.filter((m) => m !== `end ${name}`)).toEqual(sent);
  });

  it('a retained message, then another client’s live one: both arrive', async () => {
    seen.length = 0;
    const r = a.client.publishAsync('t/r', 'retained-from-a', { qos: 0, retain: true });
    const l = b.client.publishAsync('t/l', 'live-from-b', { qos: 0 });
    await Promise.all([r, l]);
    await until(
      () => seen.includes('retained-from-a') && seen.includes('live-from-b'),
      10_000,
      `both messages (seen: ${JSON.stringify(seen)})`,
    );
  });

  it('a message matching two subscriptions of one client still arrives once', async () => {
    seen.length = 0;
    await spy.client.subscribeAsync('t/dup', { qos: 1, rap: true, rh: 1 } as never);
    await a.client.publishAsync('t/dup', 'twice-matched', { qos: 1 });
    await a.client.publishAsync('t/end', 'end dup', { qos: 1 });
    await until(() => seen.includes('end dup'), 10_000, 'the end marker');
    expect(seen.filter((m) => m === 'twice-matched')).toHaveLength(1);
  });
});
