/**
 * Broker failover (docs/brokers.md § Failover): a real `homelab-cmd agent`
 * with `mqtt.url` listing two independent Mosquitto brokers. The agent moves
 * when its broker dies, loses nothing in flight, says `online` where it is
 * now, picks MQTT 5 or 3.1.1 per broker, and corrects a stale `offline`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Result } from '../../src/core/result.js';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { MOSQUITTO, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';
import { TestClient, type Msg } from '../helpers/mqtt.js';
import { freePort } from '../helpers/net.js';
import { ProtocolGate } from '../helpers/protocol-gate.js';
import { FaultProxy } from '../helpers/proxy.js';
import { until } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'broker failover tests (two Mosquitto brokers)');

const FINAL = ['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted'];
const cleanups: (() => Promise<void>)[] = [];
const later = <T>(thing: T, stop: (t: T) => Promise<void>): T => (cleanups.push(() => stop(thing)), thing);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function mosquitto(): Promise<MosquittoProcess> {
  return later(await startMosquitto(), (m) => m.stop());
}

async function observer(url: string, host: string): Promise<TestClient> {
  const c = later(await TestClient.connect(url), (t) => t.end());
  await c.sub(`homelab/${host}/status`, `homelab/${host}/result/#`);
  return c;
}

function agent(host: string, urls: string[], dir: string, actions: Record<string, unknown>): AgentProcess {
  const file = writeConfig(dir, {
    host,
    state_dir: `${dir}/state`,
    mqtt: { url: urls, keepalive: '1s' },
    heartbeat: { interval: '1h' },
    discovery: { enabled: false },
    execution: { enabled: true, path: testPath(`${dir}/bin`) },
    actions,
  });
  return later(spawnCli(['agent', '--config', file]), async (a) => {
    if (a.proc.exitCode === null && a.proc.signalCode === null) {
      a.proc.kill('SIGKILL');
      await a.exited;
    }
  });
}

const isStatus = (host: string, value: string) => (m: Msg) =>
  m.topic === `homelab/${host}/status` && m.text === value;
const finals = (c: TestClient, host: string, id: string) =>
  c
    .on(`homelab/${host}/result/${id}`)
    .filter((m) => m.text !== '' && FINAL.includes((JSON.parse(m.text) as Result).status));
const fail = (a: AgentProcess) => (e: unknown) =>
  Promise.reject(new Error(`${String(e)}\n--- agent log ---\n${a.output()}`));

async function retainedStatus(url: string, host: string): Promise<string> {
  const late = await TestClient.connect(url);
  try {
    await late.sub(`homelab/${host}/status`);
    return (await late.wait((m) => m.topic === `homelab/${host}/status`, 5000, 'the retained status')).text;
  } finally {
    await late.end();
  }
}

describe.skipIf(!MOSQUITTO)('broker failover', () => {
  it('moves to the next broker when its broker dies; a result finished meanwhile and a new request each arrive exactly once', async () => {
    const host = 'fo-move';
    const dir = tempDir();
    const gate = path.join(dir, 'gate');
    fakeBin(dir, 'slow', `while [ ! -f "${gate}" ]; do sleep 0.02; done; echo finished`);
    fakeBin(dir, 'quick', 'echo quick');
    const a = await mosquitto();
    const b = await mosquitto();
    // B is "down" (connections refused) until the result has finished while the agent had no broker.
    const toB = later(new FaultProxy(b.port), (p) => p.stop());
    await toB.start();
    toB.mode = 'refuse';
    const onA = await observer(a.url, host);
    const onB = await observer(b.url, host);
    const proc = agent(host, [a.url, toB.url], dir, { slow: { argv: ['slow'] }, quick: { argv: ['quick'] } });
    await onA.wait(isStatus(host, 'online'), 15_000, 'online on A').catch(fail(proc));

    await onA.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'fo-1' }));
    await until(() => calls(dir).length === 1, 10_000, 'the slow command to start');
    await a.stop(); // SIGKILL: no goodbye, no will anyone on A will see
    await until(() => toB.accepted >= 1, 10_000, 'the agent to try B');
    writeFileSync(gate, '');
    const journal = `${dir}/state/journal.jsonl`;
    await until(
      () => existsSync(journal) && readFileSync(journal, 'utf8').includes('"finished\\n"'),
      10_000,
      'the result, finished while no broker was reachable',
    );
    toB.mode = 'pass';

    await onB.wait(isStatus(host, 'online'), 20_000, 'online on B').catch(fail(proc));
    const r1 = await onB
      .waitJson<Result>(`homelab/${host}/result/fo-1`, (r) => FINAL.includes(r.status), 10_000)
      .catch(fail(proc));
    expect(r1).toMatchObject({ status: 'succeeded', stdout: 'finished\n' });

    const done = onB.next(
      (m) => m.topic === `homelab/${host}/result/fo-2` && m.text.includes('succeeded'),
      10_000,
      'the result of a request sent via B',
    );
    await onB.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fo-2' }));
    await done;
    // Another request's round trip: any duplicate of either result would have arrived by now.
    const marker = onB.next(
      (m) => m.topic === `homelab/${host}/result/fo-3` && m.text.includes('succeeded'),
      10_000,
      'a marker request',
    );
    await onB.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fo-3' }));
    await marker;
    expect(finals(onB, host, 'fo-1')).toHaveLength(1);
    expect(finals(onB, host, 'fo-2')).toHaveLength(1);
    expect(calls(dir)).toEqual(['slow ', 'quick ', 'quick ']);
    expect(await retainedStatus(b.url, host)).toBe('online');

    const log = proc.output();
    const switches = log.split('\n').filter((l) => l.includes('switched to another broker'));
    expect(switches).toHaveLength(1);
    expect(switches[0]).toContain(`"from":"${a.url}"`);
    expect(switches[0]).toContain(`"to":"${toB.url}"`);
    expect(switches[0]).toMatch(/"reason":"[^"]+"/);
  });

  it('a broker cut off but alive (partition) gets the will; the broker the agent moved to says online', async () => {
    const host = 'fo-partition';
    const dir = tempDir();
    fakeBin(dir, 'quick', 'echo quick');
    const a = await mosquitto();
    const b = await mosquitto();
    const toA = later(new FaultProxy(a.port), (p) => p.stop());
    await toA.start();
    const onA = await observer(a.url, host);
    const onB = await observer(b.url, host);
    const proc = agent(host, [toA.url, b.url], dir, { quick: { argv: ['quick'] } });
    await onA.wait(isStatus(host, 'online'), 15_000, 'online on A').catch(fail(proc));
    // The link to A goes silent both ways and new connections to A fail: A itself stays up.
    toA.stallOpen();
    toA.mode = 'refuse';
    await onB.wait(isStatus(host, 'online'), 20_000, 'online on B').catch(fail(proc));
    // A notices the silence after 1.5 keepalives and publishes the will there: true, for A.
    await onA.wait(isStatus(host, 'offline'), 10_000, 'the will on A');
    expect(await retainedStatus(a.url, host)).toBe('offline');
    expect(await retainedStatus(b.url, host)).toBe('online');
    const done = onB.next(
      (m) => m.topic === `homelab/${host}/result/fp-1` && m.text.includes('succeeded'),
      10_000,
      'a result via B',
    );
    await onB.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fp-1' }));
    await done;
  });

  it('speaks MQTT 5 or 3.1.1 per broker, stays on a working broker, and returns to the first when the second dies', async () => {
    const host = 'fo-proto';
    const dir = tempDir();
    fakeBin(dir, 'quick', 'echo quick');
    const a = await mosquitto();
    const b = await mosquitto();
    // B is a real Mosquitto that looks like a 3.1.1-only broker: it refuses MQTT 5.
    const bOld = later(new ProtocolGate(b.port, 'refuse'), (g) => g.stop());
    await bOld.start();
    const onA = await observer(a.url, host);
    const onB = await observer(b.url, host);
    const proc = agent(host, [a.url, bOld.url], dir, { quick: { argv: ['quick'] } });
    await onA.wait(isStatus(host, 'online'), 15_000, 'online on A').catch(fail(proc));

    await a.stop();
    await onB.wait(isStatus(host, 'online'), 20_000, 'online on B over 3.1.1').catch(fail(proc));
    expect(bOld.levels.slice(0, 2)).toEqual([5, 4]);

    // A comes back: the agent stays on B, which works (a request round trip via B shows where it is).
    await a.restart();
    const onA2 = await observer(a.url, host);
    const viaB = onB.next(
      (m) => m.topic === `homelab/${host}/result/fq-1` && m.text.includes('succeeded'),
      10_000,
      'a result via B',
    );
    await onB.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fq-1' }));
    await viaB;
    expect(onA2.on(`homelab/${host}/status`)).toHaveLength(0);

    // B dies: back to A, with MQTT 5 again (A never refused it): the response topic is answered.
    await b.stop();
    // The first `online` on A may be one B never acknowledged, held until the agent subscribed on A
    // (src/agent/outgoing-store.ts): a request sent the moment it shows is heard (failover-order.test.ts).
    await onA2.wait(isStatus(host, 'online'), 20_000, 'online on A again').catch(fail(proc));
    const rr = later(await TestClient.connect(a.url), (t) => t.end());
    await rr.sub(`homelab/${host}/reply/fo-test`);
    const reply = rr.next((m) => m.topic === `homelab/${host}/reply/fo-test`, 10_000, 'the MQTT 5 response');
    await rr.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'fq-2' }), {
      properties: { responseTopic: `homelab/${host}/reply/fo-test`, correlationData: Buffer.from('c-42') },
    });
    // On a timeout, the error says what A's observer saw as well as the agent's log: a request that never
    // reached the agent (as in the race above) reads differently from a reply that never reached the client.
    const m = await reply.catch((e: unknown) =>
      fail(proc)(
        new Error(
          `${String(e)}\n--- seen on A since it came back ---\n${onA2.messages.map((x) => `${x.topic} ${x.text.slice(0, 200)}`).join('\n')}`,
        ),
      ),
    );
    expect(m.packet.properties?.correlationData?.toString()).toBe('c-42');
    expect(JSON.parse(m.text)).toMatchObject({ id: 'fq-2', status: 'succeeded' });
    expect(proc.output().match(/refused MQTT 5; falling back/g)).toHaveLength(1);
  });

  it('a stale offline (a will published late, as a clustered broker does) is replaced by online while the agent is connected', async () => {
    const host = 'fo-stale';
    const dir = tempDir();
    const a = await mosquitto();
    const onA = await observer(a.url, host);
    const proc = agent(host, [a.url], dir, {});
    await onA.wait(isStatus(host, 'online'), 15_000, 'online').catch(fail(proc));
    const mark = onA.messages.length;
    await onA.pub(`homelab/${host}/status`, 'offline', { retain: true });
    await onA
      .wait((m) => onA.messages.indexOf(m) > mark && isStatus(host, 'online')(m), 10_000, 'online again')
      .catch(fail(proc));
    expect(await retainedStatus(a.url, host)).toBe('online');
    expect(proc.output()).toContain('a stale \\"offline\\"');
    // SIGTERM: the agent's own offline is not "corrected".
    proc.proc.kill('SIGTERM');
    await proc.exited;
    expect(await retainedStatus(a.url, host)).toBe('offline');
  });
});

describe('a list of brokers at start, and in the CLI', () => {
  it('the agent skips a dead first broker; send and status try each --url in order; none answering is exit 2 naming each', async () => {
    const host = 'fo-cli';
    const dir = tempDir();
    fakeBin(dir, 'quick', 'echo quick');
    const broker = later(await startTestBroker(), (b) => b.close());
    const live = `mqtt://127.0.0.1:${broker.port}`;
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const dead2 = `mqtt://127.0.0.1:${await freePort()}`;
    const watch = await observer(live, host);
    const proc = agent(host, [dead, live], dir, { quick: { argv: ['quick'] } });
    await watch.wait(isStatus(host, 'online'), 15_000, 'online on the second broker').catch(fail(proc));
    expect(proc.output()).toMatch(/"reason":"ECONNREFUSED[^"]*","msg":"broker not reachable; retrying"/);

    const sent = await runCli(['send', host, 'quick', '--url', dead, '--url', live]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(JSON.parse(sent.stdout)).toMatchObject({ status: 'succeeded', stdout: 'quick\n' });
    const status = await runCli(['status', '--url', dead, '--url', live, '--json']);
    expect(JSON.parse(status.stdout)).toContainEqual(expect.objectContaining({ host, status: 'online' }));

    const none = await runCli(['send', host, 'quick', '--url', dead, '--url', dead2]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`cannot connect to ${dead} (ECONNREFUSED`);
    expect(none.stderr).toContain(`, nor to ${dead2} (ECONNREFUSED`);
  });
});
