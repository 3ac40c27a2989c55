/**
 * StatusGuard (src/agent/status-guard.ts): an `offline` on the agent's own status topic while it is
 * connected is a stale will, and `online` goes out again. MQTT.js handles every packet of one read
 * before a promise continues, so an `offline` read together with the PUBACK of our `online` reaches
 * the guard before onConnect's await returns: seen in CI under load, the status then stayed `offline`.
 */
import { describe, expect, it, vi } from 'vitest';
import { StatusGuard } from '../../src/agent/status-guard.js';
import { silentLogger } from '../../src/log.js';
import { withDeadline } from '../helpers/wait.js';

const TOPIC = 'homelab/h/status';
const OFFLINE = Buffer.from('offline');

/** A guard whose `online` publishes the test acknowledges by hand; `published` counts them. */
function guard() {
  const acks: (() => void)[] = [];
  let published = 0;
  let onPublish: (() => void) | undefined;
  const g = new StatusGuard(
    TOPIC,
    () =>
      new Promise<void>((resolve) => {
        published++;
        acks.push(resolve);
        onPublish?.();
      }),
    silentLogger(),
  );
  const nextPublish = () => new Promise<void>((resolve) => (onPublish = resolve));
  return { g, acks, published: () => published, nextPublish };
}

describe('StatusGuard', () => {
  it('an offline read with the PUBACK of our online (before the await returns) is repaired', async () => {
    const { g, acks, published, nextPublish } = guard();
    const connected = g.onConnect();
    expect(published()).toBe(1);
    // The PUBACK and the stale offline in one read: the PUBACK resolves, the offline is handled at once.
    acks.shift()!();
    expect(g.onMessage(TOPIC, OFFLINE)).toBe(true);
    const again = nextPublish();
    await connected;
    await withDeadline(again, 2000, '"online" published again');
    expect(published()).toBe(2);
    g.stop();
  });

  it('an offline once armed is repaired; one after stop() is our own and stays', async () => {
    const { g, acks, published, nextPublish } = guard();
    const connected = g.onConnect();
    acks.shift()!();
    await connected;
    const again = nextPublish();
    g.onMessage(TOPIC, OFFLINE);
    await withDeadline(again, 2000, '"online" published again');
    expect(published()).toBe(2);
    g.stop();
    g.onMessage(TOPIC, OFFLINE);
    expect(published()).toBe(2);
  });

  it('an offline after the connection closed is not repaired, nor remembered for the next connection', async () => {
    // A repair goes out on a timer: fake timers let the test run every one it set, then count.
    vi.useFakeTimers();
    try {
      const { g, acks, published } = guard();
      const connected = g.onConnect();
      g.onMessage(TOPIC, OFFLINE); // while our online is in flight
      g.onDisconnect();
      acks.shift()!();
      await connected;
      // arm() ran after the close in this test's order; what matters is that the offline seen on the
      // old connection was dropped with it: no second publish, whatever timers run.
      vi.runAllTimers();
      expect(published()).toBe(1);
      g.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('other topics are not its business; online and unknown payloads change nothing', () => {
    const { g, published } = guard();
    expect(g.onMessage('homelab/other/status', OFFLINE)).toBe(false);
    expect(g.onMessage(TOPIC, Buffer.from('online'))).toBe(true);
    expect(published()).toBe(0);
  });
});
