/**
 * The outbox drains (docs/operations.md § The state directory, journal.jsonl): a final result the broker acknowledged leaves the
 * journal's outbox, so a restart publishes none of them again. Deterministic, no flood: the agent's stop
 * waits for the PUBACKs of what it published (a graceful MQTT end), so after `stop()` every result the
 * controller received must be out of the outbox; and on the next start the agent publishes its outbox
 * before `online`, on the same connection, so once `online` is seen nothing more can come from it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Journal } from '../../src/agent/journal.js';
import { silentLogger } from '../../src/log.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';

const h = new Harness();
let watch: TestClient;
beforeAll(async () => {
  await h.start();
  watch = await TestClient.connect(h.url);
});
afterAll(async () => {
  await watch?.end();
  await h.stop();
});

const unacknowledged = (stateDir: string): string[] => {
  const j = new Journal(stateDir, silentLogger());
  j.open();
  try {
    return j.outbox().map((r) => r.id);
  } finally {
    j.close();
  }
};

describe('the outbox', () => {
  it('acknowledged finals leave it: empty after a stop, and a restart publishes none of them again', async () => {
    const host = 'outbox-drain';
    const actions = { hello: { argv: ['echo', 'hello'] } };
    await watch.sub(`homelab/${host}/status`, `homelab/${host}/result/#`);
    const { agent, stateDir } = await h.agent(host, actions);
    const ids = ['ob-1', 'ob-2', 'ob-3', 'ob-4', 'ob-5'];
    for (const id of ids) expect((await h.request(host, { id, action: 'hello' })).status).toBe('succeeded');
    await h.stopAgent(agent);

    expect(unacknowledged(stateDir)).toEqual([]);

    const mark = watch.messages.length;
    const since = () => watch.messages.slice(mark);
    const again = await h.agent(host, actions, { stateDir });
    await watch.wait(
      (m) => watch.messages.indexOf(m) >= mark && m.topic === `homelab/${host}/status` && m.text === 'online',
      30_000,
      `${host} online again`,
    );
    // A request after `online` proves the connection carried everything published before it.
    expect((await h.request(host, { id: 'ob-after', action: 'hello' })).status).toBe('succeeded');
    expect(
      since()
        .map((m) => m.topic)
        .filter((t) => ids.some((id) => t.endsWith(`/result/${id}`))),
    ).toEqual([]);
    await h.stopAgent(again.agent);
    expect(unacknowledged(stateDir)).toEqual([]);
  });
});
