/**
 * A broker too busy to answer a CONNECT in time (a fleet's connect storm after a power cut): each attempt
 * that ran out of time gives the next one twice as long, so the agent gets in once the broker's answers
 * come within reach (docs/brokers.md § Reconnects). With a fixed wait shorter than the broker's answer,
 * the control shows what that cost: every attempt abandoned just before its CONNACK, for ever.
 * The slow broker is the embedded one behind a proxy that holds its answers (test/helpers/proxy.ts).
 * A stop that comes while the broker still holds its answers to the set-up must end that set-up quietly,
 * set up no part into the shutdown, and keep the goodbye intact (docs/brokers.md § What moves with the agent, and what does not).
 */
import net from 'node:net';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import type { RunningBroker } from '../../src/broker/broker.js';
import { parseConfig } from '../../src/config/load.js';
import { tempDir } from '../helpers/fixtures.js';
import { startTestBroker } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';
import { FaultProxy } from '../helpers/proxy.js';
import { until, withDeadline } from '../helpers/wait.js';

type Line = { level: number; msg: string; cause?: string; reason?: string };

const ANSWER_DELAY_MS = 1500;
let broker: RunningBroker;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await broker?.close();
});

/** An agent in this process at `url`, logging at debug into `raw`; stopped at the end of the file. */
function agentAt(
  host: string,
  url: string,
  opts: {
    connackWait?: { initialMs: number; maxMs: number };
    discovery?: boolean;
    actions?: Record<string, { argv: string[] }>;
  } = {},
) {
  const dir = tempDir();
  const config = parseConfig(
    stringify({
      host,
      state_dir: `${dir}/state`,
      mqtt: { url },
      ...(opts.discovery === false && { discovery: { enabled: false } }),
      ...(opts.actions && { execution: { enabled: true } }),
      actions: opts.actions ?? { uptime: { argv: ['uptime'] } },
    }),
    `${dir}/agent.yaml`,
  );
  const raw: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => raw.push(s) });
  const agent = new Agent(config, log, {
    backoff: { initialMs: 20, maxMs: 100 },
    ...(opts.connackWait && { connackWait: opts.connackWait }),
  });
  agent.start();
  cleanups.push(() => agent.stop());
  return { agent, raw };
}

async function slowAgent(host: string, connackWait: { initialMs: number; maxMs: number }) {
  const proxy = new FaultProxy(broker.port);
  await proxy.start();
  proxy.slowConnack(ANSWER_DELAY_MS);
  cleanups.push(() => proxy.stop());
  const { agent, raw } = agentAt(host, proxy.url, { connackWait, discovery: false });
  return { proxy, agent, lines: () => raw.map((s) => JSON.parse(s) as Line) };
}

describe('a broker that answers the CONNECT late', () => {
  it('each attempt waits twice as long as the last: the agent connects, and said why it retried', async () => {
    // 300 ms, 600 ms, 1.2 s run out before the 1.5 s answer; 2.4 s (or a later one, on a busy machine) gets it.
    const { proxy, agent, lines } = await slowAgent('slow1', { initialMs: 300, maxMs: 20_000 });
    await agent.waitConnected(60_000);
    expect(proxy.accepted).toBeGreaterThanOrEqual(4);
    const warned = lines().filter((l) => l.level === 40 && l.cause === 'timeout');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ msg: 'broker not reachable; retrying', reason: 'connack timeout' });
  }, 90_000);

  it('control: a wait that never grows abandons every attempt before its answer', async () => {
    const { proxy, agent } = await slowAgent('slow2', { initialMs: 300, maxMs: 300 });
    await until(() => proxy.accepted >= 6, 60_000, 'six abandoned attempts');
    await expect(agent.waitConnected(1)).rejects.toThrow(/no connection/);
  }, 90_000);
});

describe('a broker that takes the connection and never answers a SUBSCRIBE', () => {
  it('the agent drops that connection after the CONNACK wait and tries again, instead of staying deaf for ever', async () => {
    // A bare aedes that leaves the agent's first SUBSCRIBE unanswered, and answers every later one.
    let ignored = false;
    const aedes = await Aedes.createBroker({
      authorizeSubscribe: (client, sub, done) => {
        if (!ignored && client?.id === 'homelab-cmd-subdeaf') return void (ignored = true);
        done(null, sub);
      },
    });
    const server = net.createServer((socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    cleanups.push(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
    const { agent, raw } = agentAt(
      'subdeaf',
      `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
      { connackWait: { initialMs: 500, maxMs: 1000 }, discovery: false },
    );
    await agent.waitConnected(30_000);
    expect(ignored).toBe(true);
    const failed = raw
      .map((x) => JSON.parse(x) as Line & { err?: { message?: string } })
      .filter((l) => l.msg.startsWith('setting up the session after connect failed'));
    expect(failed).toHaveLength(1);
    expect(failed[0]?.err?.message).toBe(
      'the broker did not answer the SUBSCRIBE to homelab/subdeaf/cmd within 500 ms',
    );
  }, 60_000);
});

/**
 * A bare aedes that records, in order, what `host`'s agent publishes (its will too), behind a proxy that
 * can hold the broker's answers; `gone()` once the agent's connection has ended at the broker.
 */
async function recordingBroker(host: string) {
  const clientId = `homelab-cmd-${host}`;
  const received: string[] = [];
  let gone = false;
  const aedes = await Aedes.createBroker();
  aedes.on('publish', (packet, client) => {
    if (client?.id === clientId) received.push(`${packet.topic} ${packet.payload.toString()}`);
  });
  aedes.on('clientDisconnect', (client) => {
    if (client.id === clientId) gone = true;
  });
  const server = net.createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  cleanups.push(() => new Promise<void>((resolve) => aedes.close(() => resolve())));
  const port = (server.address() as net.AddressInfo).port;
  const proxy = new FaultProxy(port);
  await proxy.start();
  cleanups.push(() => proxy.stop());
  return { received, gone: () => gone, proxy, url: `mqtt://127.0.0.1:${port}` };
}

describe('a stop that comes while the session is being set up', () => {
  it('ends the set-up where it is: nothing is sent after `offline`, and nothing is logged as failed', async () => {
    // A bare aedes records what reaches it, in order; the proxy holds the broker's answers from the agent's
    // `online` on, so the set-up is still inside its first part when the stop comes.
    const host = 'setupstop';
    const { received, gone, proxy } = await recordingBroker(host);
    const answers = proxy.holdAnswersAfter('online');
    const { agent, raw } = agentAt(host, proxy.url);

    await withDeadline(answers.held, 10_000, 'the agent to publish online');
    const stopped = agent.stop();
    const offline = `homelab/${host}/status offline`;
    await until(() => received.includes(offline), 10_000, 'offline at the broker');
    answers.release();
    await withDeadline(stopped, 10_000, 'the agent to stop');
    await until(gone, 10_000, 'the agent gone from the broker');

    expect(received.slice(received.indexOf(offline) + 1)).toEqual([]);
    const lines = raw.map((x) => JSON.parse(x) as Line);
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    expect(lines.map((l) => l.msg)).not.toContain('listening for requests');
  }, 60_000);

  it('a stop that comes during a reconnect’s set-up sets up no part: no `online` or discovery into the shutdown', async () => {
    // Parts stop before the session says goodbye; a command still running keeps the stop in its drain
    // while the set-up of a new connection, held at its SUBSCRIBE, is let go.
    const host = 'setupdrain';
    const { received, gone, proxy, url } = await recordingBroker(host);
    const { agent } = agentAt(host, proxy.url, { actions: { slow: { argv: ['sleep', '2'] } } });
    await agent.waitConnected(10_000);
    const controller = await TestClient.connect(url);
    cleanups.push(() => controller.end());
    await controller.sub(`homelab/${host}/result/+`);
    await controller.pub(`homelab/${host}/cmd/slow`, '', { qos: 1 });
    await controller.wait((m) => m.text.includes('"running"'), 10_000, 'the command running');

    const answers = proxy.holdAnswersAfter(`homelab/${host}/cmd`);
    proxy.cut();
    await withDeadline(answers.held, 10_000, 'the SUBSCRIBE of the next connection');
    const mark = received.length;
    const stopped = agent.stop();
    answers.release();
    await withDeadline(stopped, 20_000, 'the agent to stop');
    await until(gone, 10_000, 'the agent gone from the broker');

    const after = received.slice(mark);
    expect(after.filter((m) => m.startsWith(`homelab/${host}/status online`))).toEqual([]);
    expect(after.filter((m) => m.startsWith('homeassistant/'))).toEqual([]);
    // What the drain finished still went out, and the goodbye came last.
    expect(after.some((m) => m.startsWith(`homelab/${host}/result/`) && m.includes('"succeeded"'))).toBe(
      true,
    );
    expect(after.at(-1)).toBe(`homelab/${host}/status offline`);
  }, 60_000);
});
