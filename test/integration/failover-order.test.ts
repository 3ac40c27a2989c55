/**
 * What the agent sends a broker that holds no session for it (docs/brokers.md § Failover): nothing
 * before it has subscribed there. MQTT.js sends its unacknowledged QoS 1 messages at the CONNACK, before
 * its `connect` event; a stale `online` among them told controllers the agent was listening on a broker
 * where it had no subscription yet, and the command they sent was dropped (src/agent/outgoing-store.ts).
 * Broker A is a bare aedes in this process, so the order of the agent's packets there is read from the
 * broker's own events, not guessed from timing.
 */
import net from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { startTestBroker } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';
import { FaultProxy } from '../helpers/proxy.js';
import { until } from '../helpers/wait.js';

const cleanups: (() => Promise<void>)[] = [];
const later = <T>(thing: T, stop: (t: T) => Promise<void>): T => (cleanups.push(() => stop(thing)), thing);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * A bare aedes on a free port that records, in order, what one client id subscribed and published. Its
 * first SUBSCRIBE waits for `holdFirstSubscribe` to resolve: the window a slow broker leaves open.
 */
async function recordingBroker(
  clientId: string,
  holdFirstSubscribe: () => Promise<void>,
): Promise<{ url: string; seen: string[] }> {
  let held = false;
  const aedes = await Aedes.createBroker({
    authorizeSubscribe: (client, sub, done) => {
      if (held || client?.id !== clientId) return done(null, sub);
      held = true;
      void holdFirstSubscribe().then(() => done(null, sub));
    },
  });
  const seen: string[] = [];
  aedes.on('subscribe', (subs, client) => {
    if (client?.id === clientId) for (const s of subs) seen.push(`subscribe ${s.topic}`);
  });
  aedes.on('publish', (packet, client) => {
    if (client?.id === clientId)
      seen.push(`publish ${packet.topic} ${packet.payload.toString().slice(0, 40)}`);
  });
  const server = net.createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  later(server, (s) => new Promise<void>((resolve) => s.close(() => resolve())));
  // Cleanups run last-in first: aedes closes its clients' sockets before the server stops listening.
  later(aedes, (x) => new Promise<void>((resolve) => x.close(() => resolve())));
  return { url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`, seen };
}

/** The journal holds `id`'s final result (written before it is published: journal.ts). */
function finalJournaled(journal: string, id: string): boolean {
  return (
    existsSync(journal) &&
    readFileSync(journal, 'utf8')
      .split('\n')
      .some((l) => l.includes(`"${id}"`) && l.includes('"succeeded"'))
  );
}

describe('failover to a broker without the agent’s session', () => {
  it('subscribes before it sends anything there: a result the old broker never acknowledged, and one finished meanwhile, each arrive once', async () => {
    const host = 'fo-order';
    const dir = tempDir();
    const gate = path.join(dir, 'gate');
    const journal = `${dir}/state/journal.jsonl`;
    fakeBin(dir, 'quick', 'echo quick');
    fakeBin(dir, 'slow', `while [ ! -f "${gate}" ]; do sleep 0.02; done; echo slow`);
    const b = later(await startTestBroker(), (x) => x.close());
    const toB = later(new FaultProxy(b.port), (p) => p.stop());
    await toB.start();
    // While A holds the agent's first SUBSCRIBE, the slow command finishes and its result is journaled:
    // it must wait for the subscriptions too, not go out in their round trips.
    const a = await recordingBroker(`homelab-cmd-${host}`, async () => {
      writeFileSync(gate, '');
      await until(() => finalJournaled(journal, 'fo-slow'), 10_000, 'the slow result journaled');
    });
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: [toB.url, a.url], keepalive: '1s' },
      heartbeat: { interval: '1h' },
      discovery: { enabled: false },
      execution: { enabled: true, path: testPath(`${dir}/bin`) },
      actions: { quick: { argv: ['quick'] }, slow: { argv: ['slow'] } },
    });
    const proc: AgentProcess = later(spawnCli(['agent', '--config', file]), async (x) => {
      x.proc.kill('SIGKILL');
      await x.exited;
    });
    const fail = (e: unknown) =>
      Promise.reject(new Error(`${String(e)}\n--- agent log ---\n${proc.output()}`));
    await until(
      () => proc.output().includes('listening for requests'),
      15_000,
      'the agent set up on B',
    ).catch(fail);

    const onB = later(await TestClient.connect(`mqtt://127.0.0.1:${b.port}`), (c) => c.end());
    await onB.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'fo-slow' }));
    await until(() => calls(dir).length === 1, 10_000, 'the slow command to start');
    // B never hears the next final result: its PUBLISH is held on the way, so MQTT.js keeps it unacknowledged.
    const held = toB.holdUplink(`homelab/${host}/result/fo-held`);
    await onB.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fo-held' }));
    await held.held;
    // B is gone for good: the agent moves to A, which has never seen it.
    toB.mode = 'refuse';
    toB.cut();

    const onA = later(await TestClient.connect(a.url), (c) => c.end());
    await onA.sub(`homelab/${host}/status`, `homelab/${host}/result/#`);
    await onA
      .wait((m) => m.topic === `homelab/${host}/result/fo-held`, 20_000, 'the held result on A')
      .catch(fail);
    await onA
      .wait((m) => m.topic === `homelab/${host}/result/fo-slow` && m.text.includes('"succeeded"'), 20_000)
      .catch(fail);
    await onA.wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online', 10_000).catch(fail);
    // A request sent the moment `online` shows on A is heard: the agent subscribed before saying it.
    const done = onA.next(
      (m) => m.topic === `homelab/${host}/result/fo-after` && m.text.includes('"succeeded"'),
      10_000,
      'the result of a request sent on A',
    );
    await onA.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fo-after' }));
    await done.catch(fail);

    const firstPublish = a.seen.findIndex((e) => e.startsWith('publish '));
    const lastSubscribe = a.seen.findLastIndex((e) => e.startsWith('subscribe '));
    expect(firstPublish, a.seen.join('\n')).toBeGreaterThan(lastSubscribe);
    expect(a.seen.filter((e) => e.startsWith(`subscribe homelab/${host}/cmd`)).length).toBeGreaterThan(0);
    // The held result, sent once to A; the journal knows A acknowledged it (it leaves the outbox).
    expect(a.seen.filter((e) => e.startsWith(`publish homelab/${host}/result/fo-held `))).toHaveLength(1);
    expect(a.seen.filter((e) => e.startsWith(`publish homelab/${host}/result/fo-slow `))).toHaveLength(1);
    await until(
      () =>
        readFileSync(journal, 'utf8')
          .split('\n')
          .some((l) => l.includes('"fo-held"') && l.includes('"published":true')),
      10_000,
      'the journal to record the held result as published',
    );
  });
});
