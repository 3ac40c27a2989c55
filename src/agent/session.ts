/**
 * The agent's MQTT session: MQTT 5 with a fallback to 3.1.1 only when the
 * broker refuses 5, a stable client id with a persistent session, a retained
 * last will, and reconnects with capped exponential backoff and jitter — every
 * disconnect logged with its reason, because silent loss of control is what
 * users of other agents complained about.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import mqtt, { Store, type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from '../log.js';

export interface SessionOptions {
  url: string;
  clientId: string;
  username?: string | undefined;
  password?: string | undefined;
  keepaliveMs: number;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  insecure: boolean;
  will: { topic: string; payload: string };
  /** Subscribed (one topic per SUBSCRIBE) at every connect that has no session present. */
  subscriptions: string[];
  log: Logger;
  /** A persistent session outlives a disconnect by this long (MQTT 5 Session Expiry Interval). */
  sessionExpirySec?: number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface Incoming {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

export type ConnectListener = (info: { protocolVersion: 4 | 5; sessionPresent: boolean; reconnect: boolean }) => void | Promise<void>;

// Reason codes of a CONNACK that refuses the protocol version: v5 0x84, v3.1.1 return code 1.
const UNSUPPORTED_PROTOCOL = new Set([0x84, 1]);

export class MqttSession {
  private client: MqttClient | undefined;
  private protocolVersion: 4 | 5 = 5;
  private attempts = 0;
  private everConnected = false;
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  // Shared across reconnects so QoS 1 messages in flight survive them (client.reconnect() would drop them).
  private incomingStore = new Store();
  private outgoingStore = new Store();
  private readonly messageListeners: ((msg: Incoming) => void)[] = [];
  private readonly connectListeners: ConnectListener[] = [];
  private readonly closeListeners: (() => void)[] = [];

  constructor(private readonly opts: SessionOptions) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
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
    this.client = this.createClient();
  }

  /** Resolves at the next successful connect (or at once when connected). */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection to ${redactUrl(this.opts.url)} within ${timeoutMs} ms`)), timeoutMs);
      this.connectListeners.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async publish(topic: string, payload: string | Buffer, options: IClientPublishOptions = {}): Promise<void> {
    const client = this.client;
    if (!client) throw new Error('session not started');
    if (this.protocolVersion !== 5 && options.properties) {
      // 3.1.1 has no properties: expiry and correlation data are lost on such brokers.
      const { properties: _dropped, ...rest } = options;
      options = rest;
    }
    await client.publishAsync(topic, payload, { qos: 1, ...options });
  }

  /** Orderly goodbye: `offline` retained first, then DISCONNECT (which suppresses the will). */
  async stop(finalStatus?: { topic: string; payload: string }): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    if (!client) return;
    if (finalStatus && client.connected) {
      try {
        await withTimeout(client.publishAsync(finalStatus.topic, finalStatus.payload, { qos: 1, retain: true }), 2000);
      } catch (err) {
        this.opts.log.warn({ err }, 'could not publish offline status before disconnecting; the last will covers it');
      }
    }
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  }

  private createClient(): MqttClient {
    const o = this.opts;
    const options: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: this.protocolVersion,
      clean: false,
      keepalive: Math.max(1, Math.round(o.keepaliveMs / 1000)),
      reconnectPeriod: 0, // we reconnect ourselves, with backoff
      connectTimeout: 10_000,
      resubscribe: false,
      incomingStore: this.incomingStore,
      outgoingStore: this.outgoingStore,
      will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: true },
      rejectUnauthorized: !o.insecure,
    };
    if (this.protocolVersion === 5) options.properties = { sessionExpiryInterval: o.sessionExpirySec ?? 7 * 24 * 3600 };
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password;
    if (o.caFile) options.ca = readFileSync(o.caFile);
    if (o.certFile) options.cert = readFileSync(o.certFile);
    if (o.keyFile) options.key = readFileSync(o.keyFile);

    const client = mqtt.connect(o.url, options);
    client.on('connect', (connack) => {
      // Nagle + delayed ACK turns two small packets into an 40-88 ms stall; results are small packets.
      (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.attempts = 0;
      o.log.info({ url: redactUrl(o.url), protocolVersion: this.protocolVersion, sessionPresent: connack.sessionPresent }, reconnect ? 'reconnected to broker' : 'connected to broker');
      void this.afterConnect(client, connack.sessionPresent, reconnect);
    });
    client.on('message', (topic, payload, packet) => {
      for (const l of this.messageListeners) l({ topic, payload, packet });
    });
    client.on('error', (err: Error & { code?: number | string }) => {
      if (this.protocolVersion === 5 && typeof err.code === 'number' && UNSUPPORTED_PROTOCOL.has(err.code)) {
        o.log.warn({ url: redactUrl(o.url) }, 'the broker refused MQTT 5; falling back to MQTT 3.1.1 (no response topics, no message expiry)');
        this.protocolVersion = 4;
        client.removeAllListeners('close');
        // end() closes the stores it was given; nothing was in flight on a connection that never opened.
        client.end(true, {}, () => undefined);
        this.incomingStore = new Store();
        this.outgoingStore = new Store();
        this.client = this.createClient();
        return;
      }
      o.log.warn({ err: err.message, code: err.code }, 'mqtt error');
    });
    client.on('disconnect', (packet) => {
      o.log.warn({ reasonCode: packet.reasonCode, reason: packet.properties?.reasonString }, 'the broker sent DISCONNECT');
    });
    client.on('close', () => {
      for (const l of this.closeListeners) l();
      if (this.stopping) return;
      const delay = this.nextDelay();
      o.log.warn({ url: redactUrl(o.url), retryInMs: delay, attempt: this.attempts }, this.everConnected ? 'connection to broker lost; reconnecting' : 'broker not reachable; retrying');
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (!this.stopping) client.reconnect({ incomingStore: this.incomingStore, outgoingStore: this.outgoingStore });
      }, delay);
    });
    return client;
  }

  private async afterConnect(client: MqttClient, sessionPresent: boolean, reconnect: boolean): Promise<void> {
    try {
      // Subscribe at every connect, even with a session present: a persisted session may predate a
      // subscription this version needs. Retain Handling 1 sends retained messages only for a new
      // subscription, and Retain As Published keeps the retain flag on live deliveries, so a retained
      // command is recognised and refused (MQTT 5 § 3.8.3.1; 3.1.1 brokers clear the flag).
      // One topic per SUBSCRIBE: some brokers (aedes over Redis) hang on multi-topic subscribes.
      for (const topic of this.opts.subscriptions) await client.subscribeAsync(topic, { qos: 1, rap: true, rh: 1 });
      for (const l of [...this.connectListeners]) await l({ protocolVersion: this.protocolVersion, sessionPresent, reconnect });
    } catch (err) {
      this.opts.log.error({ err }, 'setting up the session after connect failed; dropping the connection to retry');
      client.stream?.destroy();
    }
  }

  private nextDelay(): number {
    const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
    const base = Math.min(maxMs, initialMs * 2 ** this.attempts);
    this.attempts++;
    // Full jitter in [base/2, base]: a fleet restarted with its broker does not reconnect in lockstep.
    return Math.round(base / 2 + Math.random() * (base / 2));
  }
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
