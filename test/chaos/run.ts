/**
 * One seeded chaos run (docs/operations.md § Chaos run): 3 agents on one broker, a stream of QoS 1,
 * QoS 0 and MQTT 5 request/response requests with deliberate re-sends, and faults (agent SIGKILL and
 * SIGTERM, broker SIGKILL and SIGTERM, each followed by a restart) until the time is up; then
 * everything is brought back, settles, and the record is returned for check.ts.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { tempDir } from '../helpers/fixtures.js';
import { freePort } from '../helpers/net.js';
import { until } from '../helpers/wait.js';
import { FINAL, type Cut, type Record, type Seen, type Sent } from './check.js';
import {
  ChaosAgent,
  embeddedBroker,
  livePgroup,
  mosquittoBroker,
  prng,
  readLog,
  workBin,
  type Broker,
} from './world.js';

const P = 'homelab';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Parsed = { id?: string; status?: string; error?: string; error_code?: string };
function parse(text: string): Parsed | undefined {
  try {
    return JSON.parse(text) as Parsed;
  } catch {
    return undefined;
  }
}

function client(url: string, clientId: string, clean: boolean): MqttClient {
  return mqtt.connect(url, {
    protocolVersion: 5,
    clientId,
    clean,
    reconnectPeriod: 250,
    connectTimeout: 5000,
    ...(clean ? {} : { properties: { sessionExpiryInterval: 3600 } }),
  });
}

export async function chaosRun(opts: {
  seed: number;
  broker: 'mosquitto' | 'embedded';
  seconds: number;
}): Promise<Record> {
  const { seed } = opts;
  const dir = tempDir(`hc-chaos-${opts.broker}-`);
  const port = await freePort();
  const broker: Broker = opts.broker === 'mosquitto' ? mosquittoBroker(dir, port) : embeddedBroker(dir, port);
  const { bin, log } = workBin(dir);
  const rec: Record = {
    seed,
    broker: opts.broker,
    sent: new Map<string, Sent>(),
    resends: 0,
    seen: [],
    log: [],
    cuts: new Map<string, Cut>(),
    faults: [],
  };
  const started = Date.now();
  await broker.start();
  const agents = ['h0', 'h1', 'h2'].map((h) => new ChaosAgent(`chaos-${h}`, dir, broker.url, bin));

  // The controller stays subscribed (persistent session) for the whole run and records everything.
  const ctl = client(broker.url, `chaos-ctl-${seed}`, false);
  // CHAOS_TRACE=1: every event of the controller and each agent's log go to trace.log / <host>.log in
  // the run's directory (printed), to find out why an invariant broke.
  const trace = process.env.CHAOS_TRACE === '1' ? path.join(dir, 'trace.log') : undefined;
  const note = (line: string) => {
    if (trace) appendFileSync(trace, `${Date.now() - started} ${line}\n`);
  };
  if (trace) process.stderr.write(`chaos trace in ${dir}\n`);
  ctl.on('connect', (ack) => {
    note(`ctl connect sessionPresent=${ack.sessionPresent}`);
    if (!ack.sessionPresent)
      ctl.subscribe([`${P}/+/result/+`, `${P}/+/reply/#`, `${P}/+/status`], { qos: 1 });
  });
  const online = new Set<string>();
  ctl.on('message', (topic, payload, packet) => {
    note(`ctl ${topic} retain=${packet.retain} ${payload.toString().slice(0, 120)}`);
    if (topic.endsWith('/status')) {
      if (payload.toString() === 'online') online.add(topic.split('/')[1]!);
      return;
    }
    const v = parse(payload.toString());
    if (!v?.id || !v.status) return;
    const where = topic.includes('/reply/') ? 'reply' : 'result';
    rec.seen.push({ id: v.id, status: v.status, error: v.error, error_code: v.error_code, where } as Seen);
    const cut = rec.cuts.get(v.id);
    if (where === 'result' && cut && v.status === 'interrupted' && cut.liveAtInterrupted === undefined)
      cut.liveAtInterrupted = livePgroup(cut.pgid);
  });
  await until(() => ctl.connected, 120_000, 'the controller to connect');
  for (const a of agents) a.start();
  // Requests sent before an agent's first subscription would go nowhere: wait until all are online.
  await until(() => agents.every((a) => online.has(a.host)), 120_000, 'the agents to come online');

  const send = client(broker.url, `chaos-send-${seed}`, true);
  await until(() => send.connected, 120_000, 'the sender to connect');
  const pending = new Set<Promise<unknown>>();
  const reqRand = prng(seed);
  const faultRand = prng(seed ^ 0x9e3779b9);
  const pick = <T>(rand: () => number, xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const t0 = Date.now();
  note('requests and faults start');
  const end = t0 + opts.seconds * 1000;
  let n = 0;

  const publish = (s: Sent, payload: string) => {
    note(`send ${s.id} qos=${s.qos} rr=${s.rr} host=${s.host}`);
    const p = send
      .publishAsync(`${P}/${s.host}/cmd/work`, payload, {
        qos: s.qos,
        ...(s.rr
          ? {
              properties: {
                responseTopic: `${P}/${s.host}/reply/${s.id}`,
                correlationData: Buffer.from(s.id),
              },
            }
          : {}),
      })
      .then(
        () => {
          note(`puback ${s.id}`);
          if (s.qos === 1) {
            s.acked = true;
            s.ackedAt = Date.now() - t0;
          }
        },
        () => undefined,
      );
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  const requests = async () => {
    const payloads = new Map<string, string>();
    while (Date.now() < end) {
      const r = reqRand();
      if (r < 0.1 && payloads.size > 0) {
        // A deliberate re-send of an id already used, with the same payload.
        const id = pick(reqRand, [...payloads.keys()]);
        rec.resends++;
        publish({ ...rec.sent.get(id)!, qos: 1, acked: false }, payloads.get(id)!);
      } else {
        const id = `c${seed}-${n++}`;
        const host = pick(reqRand, agents).host;
        const s: Sent = { id, host, qos: r < 0.25 ? 0 : 1, rr: r >= 0.25 && r < 0.4, acked: false };
        const secs = pick(reqRand, ['0', '0', '0', '1', '2', '3']);
        const payload = JSON.stringify({ id, params: { tag: id, secs } });
        rec.sent.set(id, s);
        payloads.set(id, payload);
        publish(s, payload);
      }
      await sleep(80 + reqRand() * 320);
    }
  };

  const faults = async () => {
    await sleep(1500 + faultRand() * 2000);
    while (Date.now() < end) {
      const kind = pick(faultRand, ['agent-kill', 'agent-kill', 'agent-term', 'broker-kill', 'broker-term']);
      const down = 200 + faultRand() * 1300;
      if (kind.startsWith('agent')) {
        const a = pick(faultRand, agents);
        rec.faults.push(`${kind} ${a.host} @${Date.now() - t0}ms`);
        note(`fault ${kind} ${a.host}`);
        await a.stop(kind === 'agent-kill' ? 'SIGKILL' : 'SIGTERM');
        if (kind === 'agent-kill') {
          const lines = readLog(log);
          const ended = new Set(lines.filter((l) => l.what === 'end').map((l) => l.id));
          for (const l of lines)
            if (l.what === 'start' && !ended.has(l.id) && rec.sent.get(l.id)?.host === a.host)
              rec.cuts.set(l.id, rec.cuts.get(l.id) ?? { id: l.id, pgid: l.pgid });
        }
        await sleep(down);
        a.start();
        note(`restarted ${a.host}`);
      } else {
        rec.faults.push(`${kind} @${Date.now() - t0}ms`);
        note(`fault ${kind}`);
        await broker.stop(kind === 'broker-kill' ? 'SIGKILL' : 'SIGTERM');
        await sleep(down);
        await broker.start();
        note('broker restarted');
      }
      await sleep(1500 + faultRand() * 3500);
    }
  };

  await Promise.all([requests(), faults()]);

  const faultsEnd = Date.now();
  // Settle: everything up, every id the agents got (and every acknowledged one) answered.
  for (const a of agents) if (!a.running()) a.start();
  if (!broker.running()) await broker.start();
  const wanted = () => {
    const ids = new Set(rec.seen.filter((s) => s.where === 'result').map((s) => s.id));
    for (const l of readLog(log)) ids.add(l.id);
    for (const s of rec.sent.values()) if (s.acked) ids.add(s.id);
    return [...ids].filter((id) => rec.sent.has(id));
  };
  const answered = (id: string) =>
    rec.seen.some((s) => s.id === id && s.where === 'result' && FINAL.has(s.status));
  // Generous: on a shared machine a restarted agent may take a minute to be back; it ends as soon as all are answered.
  await until(() => wanted().every(answered), 180_000, 'every id to be answered').catch(() => undefined);
  rec.settledMs = Date.now() - faultsEnd;
  // A publish in flight at a broker kill may never be acknowledged: bounded, and then not counted.
  await until(() => pending.size === 0, 5_000, 'the last PUBACKs').catch(() => undefined);
  rec.log = readLog(log);
  for (const c of rec.cuts.values()) c.liveAtEnd = livePgroup(c.pgid);

  // The retained state at the end, as a client arriving now sees it.
  const late = client(broker.url, `chaos-late-${seed}`, true);
  const retained = new Map<string, Seen>();
  late.on('message', (_t, payload, packet) => {
    const v = parse(payload.toString());
    if (packet.retain && v?.id && v.status)
      retained.set(v.id, { id: v.id, status: v.status, error: v.error, where: 'retained' });
  });
  await until(() => late.connected, 120_000, 'the late client to connect');
  await late.subscribeAsync(`${P}/+/result/+`, { qos: 1 });
  const expectRetained = new Set(rec.seen.filter((s) => s.where === 'result').map((s) => s.id)).size;
  await until(() => retained.size >= expectRetained, 5_000, 'the retained results').catch(() => undefined);
  rec.seen.push(...retained.values());

  await Promise.all([late.endAsync(true), send.endAsync(true), ctl.endAsync(true)]);
  for (const a of agents) await a.stop('SIGKILL');
  if (trace) for (const a of agents) writeFileSync(path.join(dir, `${a.host}.log`), a.logs());
  await broker.stop('SIGKILL');
  return rec;
}
