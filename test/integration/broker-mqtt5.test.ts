/**
 * MQTT 5 conformance of the embedded broker (issue 24; docs/brokers.md § MQTT 5 conformance): one
 * test per behaviour Home Assistant, Node-RED and small devices depend on, run against the embedded
 * broker without users, with users and the role ACL, and against Mosquitto 2.0 as the control. Raw
 * packets (test/helpers/raw-mqtt.ts): the client answers nothing unless the test says so, and sees
 * exactly what the broker wrote.
 */
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { silentLogger } from '../../src/log.js';
import { tempDir } from '../helpers/fixtures.js';
import { MOSQUITTO, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';
import { RawClient, type Sent } from '../helpers/raw-mqtt.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'the Mosquitto control column of the MQTT 5 conformance tests');

type Connect = Partial<Extract<Sent, { cmd: 'connect' }>>;

interface Target {
  name: string;
  embedded: boolean;
  /** Credentials every client connects with (a controller: it reads everything). */
  auth: Connect;
  start(): Promise<{ port: number; stop(): Promise<void> }>;
}

const embedded = (users: boolean, disk: boolean): Target => ({
  name: `embedded broker, ${users ? 'users + ACL' : 'no users'}, ${disk ? 'disk' : 'memory'}`,
  embedded: true,
  auth: users ? { username: 'ctl', password: Buffer.from('ctl-secret') } : {},
  async start() {
    const broker: RunningBroker = await startBroker({
      host: '127.0.0.1',
      port: 0,
      prefix: 'homelab',
      discoveryPrefix: 'homeassistant',
      log: silentLogger(),
      users: users ? [{ username: 'ctl', password: 'ctl-secret', role: 'controller' }] : [],
      // broker.persistence: disk is the default (src/config/broker.ts).
      ...(disk && { stateDir: tempDir('hc-mqtt5-') }),
    });
    return { port: broker.port, stop: () => broker.close() };
  },
});

const mosquitto: Target = {
  name: 'Mosquitto 2.0 (control)',
  embedded: false,
  auth: {},
  async start() {
    // The embedded broker's CONNECT limit (src/broker/packet-size.ts), so both refuse the same CONNECT.
    const m: MosquittoProcess = await startMosquitto('max_packet_size 65536\n');
    return { port: m.port, stop: () => m.stop() };
  },
};

const targets = [
  embedded(false, false),
  embedded(false, true),
  embedded(true, true),
  ...(MOSQUITTO ? [mosquitto] : []),
];

/** Every topic here is one a controller may publish on (src/broker/acl.ts). */
const T = (name: string) => `homelab/c5/cmd/${name}`;

const isPublish = (topic: string, payload?: string) => (p: Packet) =>
  p.cmd === 'publish' && p.topic === topic && (payload === undefined || p.payload.toString() === payload);

describe.each(targets)('MQTT 5 conformance: $name', (target) => {
  let port: number;
  let stop: () => Promise<void>;
  const open: RawClient[] = [];
  let ids = 0;

  beforeAll(async () => {
    ({ port, stop } = await target.start());
  });
  afterAll(async () => {
    for (const c of open) c.socket.destroy();
    await stop();
  });

  /** A connected client (clean start, session ends with the connection unless `connect` says otherwise). */
  async function client(connect: Connect = {}, version: 4 | 5 = 5) {
    const clientId = connect.clientId ?? `c5-${process.pid}-${++ids}`;
    const { client, connack } = await RawClient.connect(
      port,
      { clientId, ...target.auth, ...connect },
      version,
    );
    open.push(client);
    expect(connack.reasonCode ?? connack.returnCode).toBe(0);
    return { client, connack, clientId };
  }

  /** Publishes at QoS 1 and waits for the PUBACK; returns its reason code. */
  async function publish(
    c: RawClient,
    topic: string,
    payload: string | Buffer,
    opts: { retain?: boolean; messageId: number; properties?: IPublishPacket['properties'] },
  ): Promise<number> {
    c.send({
      cmd: 'publish',
      topic,
      payload,
      qos: 1,
      retain: opts.retain ?? false,
      dup: false,
      messageId: opts.messageId,
      ...(opts.properties && { properties: opts.properties }),
    });
    const ack = await c.next(
      (p) => p.cmd === 'puback' && p.messageId === opts.messageId,
      `PUBACK ${opts.messageId}`,
    );
    return (ack as { reasonCode?: number }).reasonCode ?? 0;
  }

  /** A round trip: everything the broker wrote to `c` before its PINGRESP has been read. */
  async function ping(c: RawClient): Promise<void> {
    const before = c.packets.filter((p) => p.cmd === 'pingresp').length;
    c.send({ cmd: 'pingreq' });
    await c.next(() => c.packets.filter((p) => p.cmd === 'pingresp').length > before, 'PINGRESP');
  }

  it("Maximum Packet Size: a message larger than the client's limit is dropped, not sent [MQTT-3.1.2-24]", async () => {
    const topic = T('maxsize');
    const big = 'x'.repeat(1000);
    const { client: pub } = await client();
    // A retained message larger than the limit: not sent on subscribe either.
    expect(await publish(pub, `${topic}/retained`, big, { retain: true, messageId: 1 })).toBeLessThan(0x80); // Mosquitto: 0x10, no matching subscribers
    const { client: sub } = await client({ properties: { maximumPacketSize: 256 } });
    await sub.subscribe([{ topic: `${topic}/#`, qos: 1 }], 1);
    await publish(pub, `${topic}/live`, big, { messageId: 2 });
    await publish(pub, `${topic}/live`, 'small', { messageId: 3 });
    await sub.next(isPublish(`${topic}/live`, 'small'), 'the small message');
    await ping(sub);
    expect(sub.publishes().map((p) => p.payload.length)).toEqual([5]);
    // Every packet's size on the wire: fixed header (at most 5 bytes) + Remaining Length.
    for (const p of sub.packets) expect((p.length ?? 0) + 5).toBeLessThanOrEqual(256 + 3);
    await publish(pub, `${topic}/retained`, '', { retain: true, messageId: 4 });
  });

  it('Maximum Packet Size: an oversized CONNECT is dropped before authentication, without a CONNACK', async () => {
    const c = await RawClient.open(port);
    open.push(c);
    // A wrong password 60 KB long and 10 KB of user properties, 70 KB in all: authenticating it would
    // answer CONNACK 0x86 (or 0x00 without users). Each field fits its two-byte length, so the packet
    // is well formed but for its size (mqtt-packet refuses a longer field, src/agent/client-options.ts).
    c.send({
      cmd: 'connect',
      protocolVersion: 5,
      clean: true,
      keepalive: 60,
      clientId: 'c5-huge',
      username: 'ctl',
      password: Buffer.alloc(60_000, 0x61),
      properties: { userProperties: { pad: 'p'.repeat(10_000) } },
    });
    await c.whenClosed('the broker to drop the oversized CONNECT');
    expect(c.packets.map((p) => p.cmd)).toEqual([]);
  });

  it('Receive Maximum: never more unacknowledged QoS 1 messages than the client allows [MQTT-3.3.4-9]', async () => {
    const topic = T('receive-max');
    const { client: sub } = await client({ properties: { receiveMaximum: 2 } });
    await sub.subscribe([{ topic, qos: 1 }], 1);
    let acked = 0;
    let most = 0;
    // Runs after the parser's own 'data' handler (registered first): the most ever unacknowledged.
    sub.socket.on('data', () => (most = Math.max(most, sub.publishes(topic).length - acked)));
    // A second subscriber, with no limit, tells when the broker has dispatched all four.
    const { client: witness } = await client();
    await witness.subscribe([{ topic, qos: 0 }], 1);
    const { client: pub } = await client();
    for (let i = 1; i <= 4; i++) await publish(pub, topic, `m${i}`, { messageId: i });
    await witness.next(isPublish(topic, 'm4'), 'the witness to receive m4');
    await ping(sub);
    expect(sub.publishes(topic).map((p) => p.payload.toString())).toEqual(['m1', 'm2']);
    for (const p of sub.publishes(topic).slice(0, 2)) {
      acked++;
      sub.send({ cmd: 'puback', messageId: p.messageId! });
    }
    await sub.next(() => sub.publishes(topic).length === 4, 'm3 and m4 once m1 and m2 are acknowledged');
    expect(sub.publishes(topic).map((p) => p.payload.toString())).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('Session Expiry 0: the session ends with its connection and is never resumed [MQTT-3.1.2-23]', async () => {
    const topic = T('expiry0');
    const clientId = `c5-expiry0-${process.pid}`;
    // Taken over while connected: the first connection's session (expiry 0) ends with it.
    const { client: first } = await client({
      clientId,
      clean: true,
      properties: { sessionExpiryInterval: 0 },
    });
    const { client: second, connack: taken } = await client({
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 0 },
    });
    expect(taken.sessionPresent).toBe(false);
    await first.whenClosed('the taken-over connection to close');
    await second.subscribe([{ topic, qos: 1 }], 1);
    await second.disconnect();
    // A message for the ended session: not queued for it.
    const { client: pub } = await client();
    await publish(pub, topic, 'for-a-dead-session', { messageId: 1 });
    const { client: again, connack } = await client({
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    expect(connack.sessionPresent).toBe(false);
    await ping(again);
    expect(again.publishes()).toEqual([]);
    await again.disconnect({ sessionExpiryInterval: 0 });
  });

  it('Offline queueing: a session resumed with Session Expiry 0 gets what was queued while it was away [MQTT-3.1.2-5]', async () => {
    // Paho's offline queueing test reconnects without the property (expiry 0) to collect its messages.
    const topic = T('offline');
    const clientId = `c5-offline-${process.pid}`;
    const { client: away } = await client({ clientId, properties: { sessionExpiryInterval: 60 } });
    await away.subscribe([{ topic: `${topic}/+`, qos: 2 }], 1);
    await away.disconnect();
    const { client: pub } = await client();
    await publish(pub, `${topic}/q1`, 'qos 1', { messageId: 1 });
    pub.send({
      cmd: 'publish',
      topic: `${topic}/q2`,
      payload: 'qos 2',
      qos: 2,
      retain: false,
      dup: false,
      messageId: 3,
    });
    await pub.next((p) => p.cmd === 'pubrec', 'PUBREC');
    pub.send({ cmd: 'pubrel', messageId: 3 });
    await pub.next((p) => p.cmd === 'pubcomp', 'PUBCOMP');
    const { client: back, connack } = await client({ clientId, clean: false });
    expect(connack.sessionPresent).toBe(true);
    await back.next(isPublish(`${topic}/q2`, 'qos 2'), 'the queued QoS 2 message');
    expect(back.publishes().map((p) => p.payload.toString())).toEqual(
      expect.arrayContaining(['qos 1', 'qos 2']),
    );
  });

  it('QoS 2: a packet id reused after a completed exchange is a new message, delivered [MQTT-4.3.3]', async () => {
    const topic = T('qos2-reuse');
    const { client: sub } = await client();
    await sub.subscribe([{ topic, qos: 2 }], 1);
    const { client: pub } = await client();
    for (const payload of ['first', 'second']) {
      pub.send({ cmd: 'publish', topic, payload, qos: 2, retain: false, dup: false, messageId: 7 });
      await pub.next(
        (p) =>
          p.cmd === 'pubrec' &&
          pub.packets.filter((q) => q.cmd === 'pubrec').length === (payload === 'first' ? 1 : 2),
        `PUBREC for ${payload}`,
      );
      pub.send({ cmd: 'pubrel', messageId: 7 });
      await pub.next(
        () => pub.packets.filter((q) => q.cmd === 'pubcomp').length === (payload === 'first' ? 1 : 2),
        `PUBCOMP for ${payload}`,
      );
    }
    for (const payload of ['first', 'second']) {
      const m = (await sub.next(isPublish(topic, payload), `the ${payload} message`)) as IPublishPacket;
      sub.send({ cmd: 'pubrec', messageId: m.messageId! });
      await sub.next((p) => p.cmd === 'pubrel' && p.messageId === m.messageId, 'PUBREL');
      sub.send({ cmd: 'pubcomp', messageId: m.messageId! });
    }
    await ping(sub);
    expect(sub.publishes(topic).map((p) => p.payload.toString())).toEqual(['first', 'second']);
  });

  it('QoS 2: a packet id left unreleased by an ended session is a new message in the next one [MQTT-4.3.3-9]', async () => {
    // A device that reboots mid-exchange starts a new session and counts packet ids from 1 again.
    const topic = T('qos2-session');
    const clientId = `c5-qos2-session-${process.pid}`;
    const { client: sub } = await client();
    await sub.subscribe([{ topic, qos: 1 }], 1);
    const { client: before } = await client({ clientId });
    before.send({
      cmd: 'publish',
      topic,
      payload: 'before',
      qos: 2,
      retain: false,
      dup: false,
      messageId: 1,
    });
    await before.next((p) => p.cmd === 'pubrec', 'PUBREC for the message before the reboot');
    await before.drop(); // no PUBREL: the exchange is left open, and the session (expiry 0) ends
    const { client: after, connack } = await client({ clientId, clean: false });
    expect(connack.sessionPresent).toBe(false);
    after.send({ cmd: 'publish', topic, payload: 'after', qos: 2, retain: false, dup: false, messageId: 1 });
    await after.next((p) => p.cmd === 'pubrec', 'PUBREC for the message after the reboot');
    after.send({ cmd: 'pubrel', messageId: 1 });
    await after.next((p) => p.cmd === 'pubcomp', 'PUBCOMP');
    await sub.next(isPublish(topic, 'after'), 'the message sent after the reboot');
  });

  it('Will Delay: the will goes out after its delay, without a WillDelayInterval PUBLISH property, and its retained copy is readable', async () => {
    const topic = T('will-delay');
    const { client: sub } = await client();
    await sub.subscribe([{ topic, qos: 1 }], 1);
    const { client: dying } = await client({
      properties: { sessionExpiryInterval: 5 },
      will: {
        topic,
        payload: Buffer.from('gone'),
        qos: 1,
        retain: true,
        properties: { willDelayInterval: 1, userProperties: { a: '2' } },
      },
    });
    await dying.drop();
    const will = (await sub.next(isPublish(topic, 'gone'), 'the delayed will')) as IPublishPacket;
    expect(will.properties ?? {}).not.toHaveProperty('willDelayInterval');
    expect(will.properties?.userProperties?.a).toBe('2');
    expect(sub.errors).toEqual([]);
    // Its retained copy, as a client that connects later reads it.
    const { client: late } = await client();
    await late.subscribe([{ topic, qos: 1 }], 1);
    const kept = (await late.next(isPublish(topic, 'gone'), 'the retained will')) as IPublishPacket;
    expect(kept.retain).toBe(true);
    expect(kept.properties ?? {}).not.toHaveProperty('willDelayInterval');
    const { client: pub } = await client();
    await publish(pub, topic, '', { retain: true, messageId: 1 });
  });

  it('Will Delay: a client back within the delay cancels its will; one that stays away has it sent', async () => {
    const topic = T('will-cancel');
    const { client: sub } = await client();
    await sub.subscribe([{ topic: `${topic}/+`, qos: 1 }], 1);
    const will = (who: string) => ({
      topic: `${topic}/${who}`,
      payload: Buffer.from(`${who}-gone`),
      qos: 1 as const,
      retain: false,
      properties: { willDelayInterval: 1 },
    });
    const backId = `c5-back-${process.pid}`;
    const { client: back } = await client({
      clientId: backId,
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: will('back'),
    });
    const { client: away } = await client({ properties: { sessionExpiryInterval: 30 }, will: will('away') });
    await back.drop();
    await away.drop();
    const { client: returned } = await client({
      clientId: backId,
      clean: false,
      properties: { sessionExpiryInterval: 0 },
    });
    // "back" dropped first with the same delay: had its will not been cancelled, it would be here first.
    await sub.next(isPublish(`${topic}/away`, 'away-gone'), 'the will of the client that stayed away');
    await ping(sub);
    expect(sub.publishes().map((p) => p.topic)).toEqual([`${topic}/away`]);
    await returned.disconnect();
  });

  it('Wills and retained messages across reconnects: the last retained value and only the dropped connection’s will', async () => {
    const topic = T('reconnects');
    const clientId = `c5-reconnects-${process.pid}`;
    const { client: sub } = await client();
    await sub.subscribe([{ topic: `${topic}/will`, qos: 1 }], 1);
    const will = (payload: string) => ({
      topic: `${topic}/will`,
      payload: Buffer.from(payload),
      qos: 1 as const,
      retain: false,
      // As Paho's will test sets it: the default, spelled out. Never forwarded in the PUBLISH.
      properties: { willDelayInterval: 0, userProperties: { a: '2' } },
    });
    const { client: one } = await client({ clientId, will: will('w1') });
    await publish(one, `${topic}/state`, 'v1', { retain: true, messageId: 1 });
    await one.disconnect(); // a clean DISCONNECT: will w1 is discarded
    const { client: two } = await client({ clientId, will: will('w2') });
    await publish(two, `${topic}/state`, 'v2', { retain: true, messageId: 1 });
    await two.drop(); // a dropped connection: will w2 goes out
    const w2 = (await sub.next(
      isPublish(`${topic}/will`, 'w2'),
      'the will of the dropped connection',
    )) as IPublishPacket;
    expect(w2.properties ?? {}).not.toHaveProperty('willDelayInterval');
    expect(w2.properties?.userProperties?.a).toBe('2');
    const { client: reader } = await client();
    await reader.subscribe([{ topic: `${topic}/state`, qos: 1 }], 1);
    await reader.next(isPublish(`${topic}/state`, 'v2'), 'the retained v2');
    await ping(reader);
    expect(reader.publishes().map((p) => p.payload.toString())).toEqual(['v2']);
    expect(sub.publishes().map((p) => p.payload.toString())).toEqual(['w2']);
    // Cleared by an empty retained message: a later subscriber gets nothing for it.
    const { client: three } = await client({ clientId });
    await publish(three, `${topic}/state`, '', { retain: true, messageId: 1 });
    const { client: after } = await client();
    await after.subscribe([{ topic: `${topic}/state`, qos: 1 }], 1);
    await publish(three, `${topic}/state`, 'live', { messageId: 2 });
    await after.next(isPublish(`${topic}/state`, 'live'), 'the live message');
    expect(after.publishes().map((p) => p.payload.toString())).toEqual(['live']);
  });

  it('Subscription Identifiers: a message matching overlapping subscriptions carries each of their identifiers [MQTT-3.3.4-3]', async () => {
    const topic = T('subid');
    const { client: sub } = await client();
    await sub.subscribe([{ topic: `${topic}/+/x`, qos: 1 }], 1, { subscriptionIdentifier: 1 });
    await sub.subscribe([{ topic: `${topic}/#`, qos: 1 }], 2, { subscriptionIdentifier: 2 });
    await sub.subscribe([{ topic: `${topic}/a/+`, qos: 1 }], 3);
    const { client: pub } = await client();
    await publish(pub, `${topic}/a/x`, 'both', { messageId: 1 });
    await publish(pub, `${topic}/marker`, 'marker', { messageId: 2 });
    const marker = (await sub.next(isPublish(`${topic}/marker`), 'the marker')) as IPublishPacket;
    expect([marker.properties?.subscriptionIdentifier].flat()).toEqual([2]);
    const copies = sub.publishes(`${topic}/a/x`);
    expect(copies.length).toBeGreaterThan(0);
    // One copy carrying both, or one copy per subscription each carrying its own (either is allowed).
    const ids = copies.flatMap((p) => [p.properties?.subscriptionIdentifier ?? []].flat()).sort();
    expect(ids).toEqual([1, 2]);
  });

  it('$-topics: wildcards never match them, no client publishes on them, $SYS is read by name where the ACL allows [MQTT-4.7.2-1]', async () => {
    const topic = T('dollar');
    const { client: victim, clientId: victimId } = await client();
    await victim.subscribe(
      [
        { topic: '#', qos: 1 },
        { topic: '+/+', qos: 1 },
      ],
      1,
    );
    const { client: pub } = await client();
    // A forged "a client with this id connected to another broker" notice: aedes closes that client.
    const forged = await publish(pub, `$SYS/forged/new/clients`, victimId, { messageId: 1 });
    const dollar = await publish(pub, '$c5/x', 'dollar', { messageId: 2 });
    await publish(pub, topic, 'marker', { messageId: 3 });
    await victim.next(isPublish(topic, 'marker'), 'the marker');
    await ping(victim);
    expect(victim.closed).toBe(false);
    expect(victim.publishes().filter((p) => p.topic.startsWith('$'))).toEqual([]);
    if (target.embedded) {
      // Refused outright (PUBACK 0x87), with or without users.
      expect(forged).toBe(0x87);
      expect(dollar).toBe(0x87);
    }
    // $SYS by name: anyone may read it without users (as from Mosquitto); with users, no role is granted
    // it (src/broker/acl.ts, as in the Mosquitto acl_file homelab-cmd writes), so it is refused.
    const { client: sys } = await client();
    const granted = await sys.subscribe([{ topic: '$SYS/#', qos: 0 }], 1);
    if (target.auth.username !== undefined) return void expect(granted).toEqual([0x87]);
    expect(granted).toEqual([0]);
    await client(); // a new client: the embedded broker announces it on $SYS/<id>/new/clients
    await sys.next((p) => p.cmd === 'publish' && p.topic.startsWith('$SYS/'), 'a $SYS message');
  });

  it('Shared subscriptions: the embedded broker says "not supported" (0x9E); Mosquitto shares', async () => {
    const { client: c, connack } = await client();
    const granted = await c.subscribe([{ topic: `$share/g/${T('shared')}`, qos: 1 }], 1);
    if (target.embedded) {
      expect(connack.properties?.sharedSubscriptionAvailable).toBe(false);
      expect(granted).toEqual([0x9e]);
    } else {
      expect(connack.properties?.sharedSubscriptionAvailable).not.toBe(false);
      expect(granted).toEqual([1]);
    }
  });
});
