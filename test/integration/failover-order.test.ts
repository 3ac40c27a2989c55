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
import { until, withDeadline } from '../helpers/wait.js';

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

interface Moved {
  dir: string;
  journal: string;
  file: string;
  a: { url: string; seen: string[] };
  proc: AgentProcess;
  fail: (e: unknown) => Promise<never>;
}

/**
 * An agent on B (through a proxy) with two results in flight when B goes for good: `fo-held`, finished and
 * sent but never acknowledged (its PUBLISH held on the way), and `fo-slow`, still running, which finishes
 * once A has the agent's first SUBSCRIBE. A holds that SUBSCRIBE until `holdFirstSubscribe` resolves.
 */
async function moveWithResultsInFlight(
  host: string,
  holdFirstSubscribe: (journal: string) => Promise<void>,
): Promise<Moved> {
  const dir = tempDir();
  const gate = path.join(dir, 'gate');
  const journal = `${dir}/state/journal.jsonl`;
  fakeBin(dir, 'quick', 'echo quick');
  fakeBin(dir, 'slow', `while [ ! -f "${gate}" ]; do sleep 0.02; done; echo slow`);
  const b = later(await startTestBroker(), (x) => x.close());
  const toB = later(new FaultProxy(b.port), (p) => p.stop());
  await toB.start();
  const a = await recordingBroker(`homelab-cmd-${host}`, async () => {
    writeFileSync(gate, '');
    await holdFirstSubscribe(journal);
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
  const proc = agentProcess(file);
  const fail = (e: unknown) => Promise.reject(new Error(`${String(e)}\n--- agent log ---\n${proc.output()}`));
  await until(() => proc.output().includes('listening for requests'), 15_000, 'the agent set up on B').catch(
    fail,
  );

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
  return { dir, journal, file, a, proc, fail };
}

function agentProcess(file: string): AgentProcess {
  return later(spawnCli(['agent', '--config', file]), async (x) => {
    if (x.proc.exitCode !== null || x.proc.signalCode !== null) return;
    x.proc.kill('SIGKILL');
    await x.exited;
  });
}

const published = (journal: string, id: string) =>
  readFileSync(journal, 'utf8')
    .split('\n')
    .some((l) => l.includes(`"${id}"`) && l.includes('"published":true'));

describe('failover to a broker without the agent’s session', () => {
  it('subscribes before it sends anything there: a result the old broker never acknowledged, and one finished meanwhile, each arrive once', async () => {
    const host = 'fo-order';
    // While A holds the agent's first SUBSCRIBE, the slow command finishes and its result is journaled:
    // it must wait for the subscriptions too, not go out in their round trips.
    const { journal, a, fail } = await moveWithResultsInFlight(host, (journal) =>
      until(() => finalJournaled(journal, 'fo-slow'), 10_000, 'the slow result journaled'),
    );

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
      () => published(journal, 'fo-held'),
      10_000,
      'the journal to record the held result as published',
    );
  });

  it('a stop before the subscriptions there exits at once; what was not sent is published at the next start', async () => {
    const host = 'fo-stop';
    // A takes the agent's first SUBSCRIBE only at the end of the test: the agent stops before it listens there.
    let letSubscribe!: () => void;
    const subscribeHeld = new Promise<void>((resolve) => (letSubscribe = resolve));
    const { journal, file, a, proc, fail } = await moveWithResultsInFlight(host, () => subscribeHeld);
    later(undefined, () => Promise.resolve(letSubscribe())); // before A closes (cleanups run last-in first)
    await until(() => finalJournaled(journal, 'fo-slow'), 20_000, 'the slow result journaled').catch(fail);
    expect(a.seen.filter((e) => e.startsWith('publish '))).toEqual([]);

    proc.proc.kill('SIGTERM');
    const exit = await withDeadline(proc.exited, 15_000, 'the agent to stop').catch(fail);
    expect(exit.code, proc.output()).toBe(0);
    // Neither result reached a broker that has it: both stay in the journal's outbox, and the log says so.
    expect(published(journal, 'fo-held')).toBe(false);
    expect(published(journal, 'fo-slow')).toBe(false);
    for (const id of ['fo-held', 'fo-slow'])
      expect(proc.output()).toContain(
        `"id":"${id}","msg":"could not publish a result; it stays in the outbox"`,
      );

    letSubscribe();
    const onA = later(await TestClient.connect(a.url), (c) => c.end());
    await onA.sub(`homelab/${host}/result/#`);
    const again = agentProcess(file);
    for (const id of ['fo-held', 'fo-slow'])
      await onA
        .wait((m) => m.topic === `homelab/${host}/result/${id}` && m.text.includes('"succeeded"'), 20_000, id)
        .catch((e: unknown) =>
          Promise.reject(new Error(`${String(e)}\n--- agent log ---\n${again.output()}`)),
        );
    await until(
      () => published(journal, 'fo-held') && published(journal, 'fo-slow'),
      10_000,
      'both results recorded as published',
    );
  });
});
