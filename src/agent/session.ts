/**
 * The agent's MQTT session (docs/brokers.md): brokers in failover order (core/failover.ts), MQTT 5 with a
 * per-broker fallback to 3.1.1, a stable client id with a persistent session, a retained last will, and
 * reconnects with capped exponential backoff and jitter, each logged with its reason (connection-log.ts).
 *
 * One MqttClient lives as long as the session, whichever broker it is on: QoS 1 messages in flight
 * (results finished while disconnected among them) and the promises waiting on their PUBACKs survive a
 * move to another broker, where a client per broker would drop them.
 */
import type { Socket } from 'node:net';
import { MqttClient, Store, type IClientPublishOptions, type IPublishPacket, type Packet } from 'mqtt';
import { Failover, redactUrl, type Attempt } from '../core/failover.js';
import { AUTHENTICATED_USER_PROPERTY, STAMPING_BROKER } from '../core/sender.js';
import type { Logger } from '../log.js';
import { brokerTransport, type BrokerTransport } from './broker-transport.js';
import { CONNACK_WAIT, nextConnackWait, prepareAttempt, sessionClientOptions } from './client-options.js';
import { ConnectAttempt } from './connect-attempt.js';
import { ConnectWaiters } from './connect-waiters.js';
import { ConnectionLog } from './connection-log.js';
import { OutgoingStore } from './outgoing-store.js';
import { AGENT_MAX_PACKET_SIZE, gateStream } from './packet-gate.js';
import { readRetained } from './retained-read.js';
import { sayGoodbye } from './session-goodbye.js';
import { setUpSession, type ConnectListener } from './session-setup.js';
import { TakeoverWatch } from './takeover.js';

export interface SessionOptions {
  /** Brokers in failover order (docs/brokers.md § Failover). */
  urls: readonly string[];
  clientId: string;
  username?: string | undefined;
  password?: string | undefined;
  keepaliveMs: number;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  insecure: boolean;
  will: { topic: string; payload: string };
  /** Subscribed (one topic per SUBSCRIBE) at every connect. */
  subscriptions: string[];
  log: Logger;
  /** A persistent session outlives a disconnect by this long (MQTT 5 Session Expiry Interval). */
  sessionExpirySec?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** How long an attempt waits for its CONNACK, and how far that grows (client-options.ts CONNACK_WAIT). */
  connackWait?: { initialMs: number; maxMs: number };
}

export interface Incoming {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

export class MqttSession {
  private client: MqttClient | undefined;
  private readonly failover: Failover;
  private readonly builders = new Map<string, BrokerTransport>();
  private attempt = new ConnectAttempt();
  private connackWaitMs: number;
  private everConnected = false;
  private stopping = false;
  private readonly connectionLog: ConnectionLog;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly incomingStore = new Store();
  private readonly outgoingStore = new OutgoingStore();
  /** Counts connections opened and closed: a set-up still running for a closed one must stop. */
  private connectionSeq = 0;
  /**
   * The broker of this connection has our subscriptions: false from a CONNACK without our session until
   * we have subscribed, and whatever is published meanwhile waits (outgoing-store.ts).
   */
  private heard = false;
  /** Some connection of this run got as far as its connect listeners (what they are told as `reconnect`). */
  private listenedBefore = false;
  private readonly messageListeners: ((msg: Incoming) => void)[] = [];
  private readonly connectListeners: ConnectListener[] = [];
  private readonly closeListeners: (() => void)[] = [];
  private readonly waiters = new ConnectWaiters();
  private readonly takeover: TakeoverWatch;
  /** The broker said it stamps commands with the authenticated user (core/sender.ts). */
  private brokerStamps = false;

  constructor(private readonly opts: SessionOptions) {
    this.failover = new Failover(opts.urls, opts.backoff);
    this.takeover = new TakeoverWatch(opts.clientId, opts.log);
    this.connectionLog = new ConnectionLog(opts.log);
    this.connackWaitMs = (opts.connackWait ?? CONNACK_WAIT).initialMs;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** The broker connected to, or being tried. */
  get url(): string {
    return this.failover.url;
  }

  onMessage(listener: (msg: Incoming) => void): void {
    this.messageListeners.push(listener);
  }

  onConnect(listener: ConnectListener): void {
    this.connectListeners.push(listener);
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  start(): void {
    // Every URL is parsed (and its TLS files read) now: a bad one fails the start, not a reconnect at 3 am.
    for (const url of this.opts.urls) this.builders.set(url, brokerTransport(url, this.opts));
    this.client = this.createClient();
    this.connectTo(this.failover.first());
  }

  /** Resolves once the session is connected and set up (at once when connected). */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return this.waiters.untilSetUp(timeoutMs, () => this.opts.urls.map(redactUrl).join(' or '));
  }

  async publish(topic: string, payload: string | Buffer, options: IClientPublishOptions = {}): Promise<void> {
    for (;;) {
      const client = this.client;
      if (!client) throw new Error('session not started');
      // Sent now, it could reach a broker with no subscription of ours before our `online` does; while
      // disconnected MQTT.js stores it, and the next CONNACK decides (outgoing-store.ts).
      if (client.connected && !this.heard && !this.stopping) {
        await this.waiters.untilReconnect();
        continue;
      }
      let opts = options;
      if (this.failover.protocolVersion !== 5 && opts.properties) {
        // 3.1.1 has no properties: expiry and correlation data are lost on such brokers.
        const { properties: _dropped, ...rest } = opts;
        opts = rest;
      }
      try {
        await client.publishAsync(topic, payload, { qos: 1, ...opts });
        return;
      } catch (err) {
        // After a reconnect MQTT.js re-sends its stored messages one by one and holds new ones in a queue
        // meanwhile; if the connection drops again it fails that queue ("Connection closed") instead of
        // storing it — a final result, or an MQTT 5 reply, lost until the agent restarts (the chaos run,
        // docs/operations.md § Chaos run). Such a message was never sent: send it at the next connect.
        if (this.stopping || (opts.qos ?? 1) === 0 || (err as Error).message !== 'Connection closed')
          throw err;
        await this.waiters.untilReconnect();
      }
    }
  }

  /** The retained messages on `topics` now (retained-read.ts). */
  readRetained(topics: string[], ms: number): Promise<Map<string, Buffer>> {
    return readRetained(this.client, topics, ms);
  }

  /** Orderly goodbye: `offline` retained first, then DISCONNECT (which suppresses the will). */
  async stop(finalStatus?: { topic: string; payload: string }): Promise<void> {
    this.stopping = true;
    this.waiters.stopped();
    this.outgoingStore.failHeld();
    clearTimeout(this.retryTimer);
    const client = this.client;
    if (!client) return;
    await sayGoodbye(client, finalStatus, this.opts.log);
  }

  private createClient(): MqttClient {
    const o = this.opts;
    const options = sessionClientOptions(o, {
      incomingStore: this.incomingStore,
      outgoingStore: this.outgoingStore,
    });
    options.connectTimeout = this.connackWaitMs;
    // Every packet's size is counted before MQTT.js buffers it (packet-gate.ts).
    const client = new MqttClient(
      (c) =>
        gateStream(
          this.transport().build(c),
          AGENT_MAX_PACKET_SIZE,
          (d) =>
            o.log.warn(
              { topic: d.topic, size: d.size, limit: AGENT_MAX_PACKET_SIZE },
              'dropped a message larger than the agent accepts',
            ),
          (err) => this.attempt.streamFailed(err.message),
        ),
      options,
    );

    client.on('packetreceive', (packet: Packet) => {
      // Before MQTT.js handles the CONNACK and sends its store (outgoing-store.ts). A second CONNACK on an
      // open connection, or a refusal, is MQTT.js's to handle.
      if (packet.cmd !== 'connack' || client.connected) return;
      if ((packet.reasonCode ?? packet.returnCode ?? 0) !== 0) return;
      // Without our session nothing is subscribed yet; with messages still held from a connection before,
      // newer ones join them, so that none overtakes an older one.
      this.heard = packet.sessionPresent && this.outgoingStore.heldCount === 0;
      if (!this.heard) this.outgoingStore.hold(client);
    });
    client.on('connect', (connack) => {
      // Nagle + delayed ACK turns two small packets into an 40-88 ms stall; results are small packets.
      (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
      this.attempt.connected = true;
      this.takeover.connected();
      this.brokerStamps = connack.properties?.responseInformation === STAMPING_BROKER;
      this.failover.connected();
      const url = this.failover.url;
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.connectionLog.connected(url, this.failover.protocolVersion, connack.sessionPresent, reconnect);
      void this.afterConnect(client, connack.sessionPresent, url, ++this.connectionSeq);
    });
    client.on('message', (topic, payload, packet) => {
      // Unproven where the broker did not vouch for it: the sender may have written it.
      const props = packet.properties?.userProperties;
      if (!this.brokerStamps && props) delete props[AUTHENTICATED_USER_PROPERTY];
      for (const l of this.messageListeners) l({ topic, payload, packet });
    });
    client.on('error', (err: Error & { code?: number | string }) => {
      // Stopping: a QoS 1 delivery that arrives after our DISCONNECT cannot be acknowledged (MQTT.js writes
      // its PUBACK to the ended socket); the broker keeps it for our next session, so there is nothing to say.
      if (this.stopping && err.code === 'ERR_STREAM_WRITE_AFTER_END') return;
      if (!this.attempt.failed(err, this.failover.protocolVersion)) return;
      o.log.warn({ url: redactUrl(this.failover.url), err: err.message, code: err.code }, 'mqtt error');
    });
    client.on('disconnect', (packet) => {
      const reason = packet.properties?.reasonString;
      this.takeover.disconnected(packet.reasonCode);
      this.attempt.disconnected(packet.reasonCode, reason);
      o.log.warn(
        { url: redactUrl(this.failover.url), reasonCode: packet.reasonCode, reason },
        'the broker sent DISCONNECT',
      );
    });
    client.on('close', () => {
      this.connectionSeq++;
      for (const l of this.closeListeners) l();
      if (this.stopping) return;
      this.connectTo(this.afterClose());
    });
    return client;
  }

  /** Classifies the attempt that just ended and logs it (connection-log.ts): the failover decides what comes next. */
  private afterClose(): Attempt {
    const outcome = this.attempt.outcome();
    const url = this.failover.url;
    this.connackWaitMs = nextConnackWait(
      this.connackWaitMs,
      this.attempt.ending,
      this.opts.connackWait ?? CONNACK_WAIT,
    );
    // Kicked off by another client with the same id: wait longer each time instead of fighting back.
    const next = this.takeover.delay(this.failover.next(outcome), outcome.kind === 'lost');
    this.connectionLog.attemptEnded(url, outcome, next, this.attempt.cause);
    return next;
  }

  private connectTo(next: Attempt): void {
    clearTimeout(this.retryTimer);
    const go = () => {
      const client = this.client;
      if (this.stopping || !client) return;
      this.attempt = new ConnectAttempt();
      const { username, password } = this.transport();
      prepareAttempt(
        client.options,
        next,
        { username: username ?? this.opts.username, password: password ?? this.opts.password },
        this.opts.sessionExpirySec ?? 7 * 24 * 3600,
      );
      client.options.connectTimeout = this.connackWaitMs;
      client.reconnect({ incomingStore: this.incomingStore, outgoingStore: this.outgoingStore });
    };
    // Even "at once" waits for the next turn of the event loop: the 'close' that got us here is
    // still being handled by MQTT.js's own listeners.
    this.retryTimer = setTimeout(go, Math.max(0, next.delayMs));
  }

  private transport(): BrokerTransport {
    const t = this.builders.get(this.failover.url);
    if (!t) throw new Error(`no transport for ${redactUrl(this.failover.url)}`);
    return t;
  }

  private async afterConnect(
    client: MqttClient,
    sessionPresent: boolean,
    url: string,
    seq: number,
  ): Promise<void> {
    // A stop ends the set-up too: its goodbye has begun, and a part that went on would publish after
    // `offline` or fail on the ending client, where the error would cut the goodbye short (the will fires).
    const current = () => seq === this.connectionSeq && !this.stopping;
    const setUp = await setUpSession({
      client,
      subscriptions: this.opts.subscriptions,
      listeners: this.connectListeners,
      current,
      // As long as this attempt waited for its CONNACK: a broker that slow to answer is that slow here too.
      subackWaitMs: this.connackWaitMs,
      subscribed: () => {
        // Heard on this broker now: what waited for a connection may go out (outgoing-store.ts).
        this.heard = true;
        this.outgoingStore.release(client, this.failover.protocolVersion === 5);
        this.waiters.subscribed();
      },
      info: () => {
        // `reconnect` false only for the first connection whose listeners run: one that closed before its
        // subscriptions did not flush the outbox of the last run (pipeline.ts onConnect).
        const reconnect = this.listenedBefore;
        this.listenedBefore = true;
        return { protocolVersion: this.failover.protocolVersion, sessionPresent, reconnect, url, current };
      },
      log: this.opts.log,
    });
    if (!setUp) return;
    this.waiters.wasSetUp();
    // "connected" comes at the CONNACK, before the subscriptions: this line says requests are heard
    // (docs/brokers.md § Log lines), which scripts and tests wait for.
    this.opts.log.info({ url: redactUrl(url) }, 'listening for requests');
  }
}
