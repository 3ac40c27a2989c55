/**
 * The agent's MQTT session: one or more brokers in failover order
 * (core/failover.ts), MQTT 5 with a per-broker fallback to 3.1.1, a stable
 * client id with a persistent session, a retained last will, and reconnects
 * with capped exponential backoff and jitter — every disconnect and every
 * move to another broker logged with its reason, because silent loss of
 * control is what users of other agents complained about.
 *
 * One MqttClient lives as long as the session, whichever broker it is on:
 * QoS 1 messages in flight (results finished while disconnected among them)
 * and the promises waiting on their PUBACKs survive a move to another broker,
 * where a client per broker would drop them.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import mqtt, {
  MqttClient,
  Store,
  type IClientOptions,
  type IClientPublishOptions,
  type IPublishPacket,
  type StreamBuilder,
} from 'mqtt';
import {
  Failover,
  redactUrl,
  refusesV5,
  type Attempt,
  type Outcome,
  type ProtocolVersion,
} from '../core/failover.js';
import { AUTHENTICATED_USER_PROPERTY, STAMPING_BROKER } from '../core/sender.js';
import type { Logger } from '../log.js';
import { connectCause, type Cause } from './connect-cause.js';
import { AGENT_MAX_PACKET_SIZE, gateStream } from './packet-gate.js';
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
}

export interface Incoming {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

export type ConnectListener = (info: {
  protocolVersion: ProtocolVersion;
  sessionPresent: boolean;
  reconnect: boolean;
  url: string;
}) => void | Promise<void>;

/** What happened during one connection attempt (one TCP/TLS connection). */
interface AttemptState {
  connected: boolean;
  refusedV5: boolean;
  error: string | undefined;
  /** What the broker (or the network) said when the attempt failed before a CONNACK accepted it. */
  cause?: Cause;
}

export class MqttSession {
  private client: MqttClient | undefined;
  private readonly failover: Failover;
  private readonly builders = new Map<
    string,
    { build: StreamBuilder; username: string | undefined; password: string | undefined }
  >();
  private attempt: AttemptState = { connected: false, refusedV5: false, error: undefined };
  private everConnected = false;
  private lastUrl: string | undefined;
  /** Why the agent left the broker it was last connected to (logged with the switch). */
  private leftBecause: string | undefined;
  private stopping = false;
  /**
   * Failed attempts since the last connection: each distinct cause (per broker) is logged once, the
   * recovery once (docs/brokers.md § Log lines).
   */
  private failures: { attempts: number; since: number; logged: Set<string> } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly incomingStore = new Store();
  private readonly outgoingStore = new Store();
  private readonly messageListeners: ((msg: Incoming) => void)[] = [];
  private readonly connectListeners: ConnectListener[] = [];
  private readonly closeListeners: (() => void)[] = [];
  /** Publishes MQTT.js failed at a connection drop before sending them, waiting to be sent again. */
  private reconnectWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private readonly takeover: TakeoverWatch;
  /** The broker said it stamps commands with the authenticated user (core/sender.ts). */
  private brokerStamps = false;

  constructor(private readonly opts: SessionOptions) {
    this.failover = new Failover(opts.urls, opts.backoff);
    this.takeover = new TakeoverWatch(opts.clientId, opts.log);
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
    for (const url of this.opts.urls) this.builders.set(url, this.transportFor(url));
    this.client = this.createClient();
    this.connectTo(this.failover.first());
  }

  /** Resolves at the next successful connect (or at once when connected). */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // Removed once it fired or timed out: a caller that waits again must not pile listeners up.
      const remove = () => {
        const at = this.connectListeners.indexOf(listener);
        if (at >= 0) this.connectListeners.splice(at, 1);
      };
      const timer = setTimeout(() => {
        remove();
        reject(
          new Error(`no connection to ${this.opts.urls.map(redactUrl).join(' or ')} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const listener = () => {
        clearTimeout(timer);
        remove();
        resolve();
      };
      this.connectListeners.push(listener);
    });
  }

  async publish(topic: string, payload: string | Buffer, options: IClientPublishOptions = {}): Promise<void> {
    for (;;) {
      const client = this.client;
      if (!client) throw new Error('session not started');
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
        await this.nextConnect();
      }
    }
  }

  /** Resolves at the next connect (rejects if the session stops first). */
  private nextConnect(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.reconnectWaiters.push({ resolve, reject });
    });
  }

  /** Orderly goodbye: `offline` retained first, then DISCONNECT (which suppresses the will). */
  /**
   * The retained messages on `topics` now: subscribed (Retain Handling 0: sent even to a subscription a
   * persistent session already holds), gathered until each topic has one or `ms` pass, unsubscribed.
   * Topics with none are absent from the map (restart-check.ts).
   */
  async readRetained(topics: string[], ms: number): Promise<Map<string, Buffer>> {
    const client = this.client;
    const got = new Map<string, Buffer>();
    if (!client || topics.length === 0) return got;
    const wanted = new Set(topics);
    let done: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (done = resolve));
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) => {
      if (!wanted.has(topic) || !packet.retain || got.has(topic)) return;
      got.set(topic, payload);
      if (got.size === wanted.size) done();
    };
    client.on('message', onMessage);
    let timer: NodeJS.Timeout | undefined;
    try {
      for (const topic of wanted) await client.subscribeAsync(topic, { qos: 0, rh: 0 });
      await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
    } finally {
      clearTimeout(timer);
      client.removeListener('message', onMessage);
    }
    for (const topic of wanted) await client.unsubscribeAsync(topic).catch(() => undefined);
    return got;
  }

  async stop(finalStatus?: { topic: string; payload: string }): Promise<void> {
    this.stopping = true;
    for (const w of this.reconnectWaiters.splice(0))
      w.reject(new Error('the agent stopped before it could send this again'));
    clearTimeout(this.retryTimer);
    const client = this.client;
    if (!client) return;
    if (finalStatus && client.connected) {
      try {
        await withTimeout(
          client.publishAsync(finalStatus.topic, finalStatus.payload, { qos: 1, retain: true }),
          2000,
        );
      } catch (err) {
        this.opts.log.warn(
          { err },
          'could not publish offline status before disconnecting; the last will covers it',
        );
      }
    }
    // Disconnected, a graceful end would wait for PUBACKs that cannot come; they stay in the journal's outbox.
    const force = !client.connected;
    await new Promise<void>((resolve) => client.end(force, {}, () => resolve()));
  }

  /**
   * The transport for one URL, built by MQTT.js itself (schemes, TLS, WebSocket paths, credentials in
   * the URL) through a client that never connects; the session's one client borrows it per attempt.
   */
  private transportFor(url: string): {
    build: StreamBuilder;
    username: string | undefined;
    password: string | undefined;
  } {
    const o = this.opts;
    const tls: IClientOptions = { manualConnect: true, rejectUnauthorized: !o.insecure };
    if (o.caFile) tls.ca = readFileSync(o.caFile);
    if (o.certFile) tls.cert = readFileSync(o.certFile);
    if (o.keyFile) tls.key = readFileSync(o.keyFile);
    const parser = mqtt.connect(url, tls);
    const build = (parser as unknown as { streamBuilder?: StreamBuilder }).streamBuilder;
    if (typeof build !== 'function')
      throw new Error(
        'this version of MQTT.js has no streamBuilder on its client — install the mqtt 5.x that package.json names (npm ci)',
      );
    return {
      build,
      username: parser.options.username,
      password: parser.options.password === undefined ? undefined : String(parser.options.password),
    };
  }

  private createClient(): MqttClient {
    const o = this.opts;
    const options: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: 5,
      clean: false,
      keepalive: Math.max(1, Math.round(o.keepaliveMs / 1000)),
      reconnectPeriod: 0, // we reconnect ourselves: failover order and backoff
      connectTimeout: 10_000,
      resubscribe: false,
      manualConnect: true,
      incomingStore: this.incomingStore,
      outgoingStore: this.outgoingStore,
      will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: true },
    };
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
          (err) => (this.attempt.error = err.message),
        ),
      options,
    );

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
      const protocolVersion = this.failover.protocolVersion;
      if (this.lastUrl !== undefined && this.lastUrl !== url) {
        o.log.warn(
          { from: redactUrl(this.lastUrl), to: redactUrl(url), reason: this.leftBecause, protocolVersion },
          'switched to another broker',
        );
      }
      this.lastUrl = url;
      if (this.failures) {
        const { attempts, since, logged } = this.failures;
        this.failures = undefined;
        o.log.info(
          {
            url: redactUrl(url),
            failedAttempts: attempts,
            since: new Date(since).toISOString(),
            causes: [...logged].map((k) => k.slice(k.lastIndexOf('|') + 1)),
          },
          'the broker accepts the agent again; the connection problem is over',
        );
      }
      o.log.info(
        { url: redactUrl(url), protocolVersion, sessionPresent: connack.sessionPresent },
        reconnect ? 'reconnected to broker' : 'connected to broker',
      );
      void this.afterConnect(client, connack.sessionPresent, reconnect, url);
      for (const w of this.reconnectWaiters.splice(0)) w.resolve();
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
      if (this.failover.protocolVersion === 5 && typeof err.code === 'number' && refusesV5(err.code)) {
        this.attempt.refusedV5 = true;
        return;
      }
      this.attempt.error = typeof err.code === 'string' ? `${err.code}: ${err.message}` : err.message;
      // Before a CONNACK: the attempt's end logs it, once per cause (afterClose).
      if (!this.attempt.connected) {
        this.attempt.cause = connectCause(err.code, err.message);
        return;
      }
      o.log.warn({ url: redactUrl(this.failover.url), err: err.message, code: err.code }, 'mqtt error');
    });
    client.on('disconnect', (packet) => {
      const reason = packet.properties?.reasonString;
      this.takeover.disconnected(packet.reasonCode);
      this.attempt.error = `the broker sent DISCONNECT (reason code ${packet.reasonCode ?? 0}${reason ? `: ${reason}` : ''})`;
      o.log.warn(
        { url: redactUrl(this.failover.url), reasonCode: packet.reasonCode, reason },
        'the broker sent DISCONNECT',
      );
    });
    client.on('close', () => {
      for (const l of this.closeListeners) l();
      if (this.stopping) return;
      this.connectTo(this.afterClose());
    });
    return client;
  }

  /** Classifies the attempt that just ended and logs it once: the failover decides what comes next. */
  private afterClose(): Attempt {
    const log = this.opts.log;
    const { connected, refusedV5, error } = this.attempt;
    const url = redactUrl(this.failover.url);
    const outcome: Outcome = connected
      ? { kind: 'lost', reason: error ?? 'the connection closed (the broker went away, or hung up)' }
      : refusedV5
        ? { kind: 'refused_v5' }
        : error !== undefined
          ? { kind: 'failed', reason: error }
          : { kind: 'closed_without_connack' };
    // Kicked off by another client with the same id: wait longer each time instead of fighting back.
    const next = this.takeover.delay(this.failover.next(outcome), outcome.kind === 'lost');
    const where = { url, next: redactUrl(next.url), retryInMs: next.delayMs };
    if (next.fallback === 'refused') {
      log.warn(
        { url },
        'the broker refused MQTT 5; falling back to MQTT 3.1.1 (no response topics, no message expiry)',
      );
    } else if (next.fallback === 'closed_without_connack') {
      log.warn(
        { url },
        'the broker closed the connection without answering the MQTT 5 CONNECT (RabbitMQ before 3.13 does this); trying MQTT 3.1.1 (no response topics, no message expiry)',
      );
    } else if (outcome.kind === 'lost') {
      this.leftBecause = outcome.reason;
      log.warn({ ...where, reason: outcome.reason }, 'connection to broker lost; reconnecting');
    } else {
      const reason =
        outcome.kind === 'failed' ? outcome.reason : 'the broker closed the connection without a CONNACK';
      const cause = this.attempt.cause ?? connectCause(undefined, reason);
      const failures = (this.failures ??= { attempts: 0, since: Date.now(), logged: new Set() });
      failures.attempts++;
      // Once per broker and cause: the retries that meet it again say nothing new (backoff: core/failover.ts).
      const key = `${url}|${cause.kind}`;
      const fields = { ...where, cause: cause.kind, check: cause.check, reason };
      if (failures.logged.has(key)) log.debug({ ...fields, attempts: failures.attempts }, cause.msg);
      else {
        failures.logged.add(key);
        log.warn(fields, cause.msg);
      }
    }
    return next;
  }

  private connectTo(next: Attempt): void {
    clearTimeout(this.retryTimer);
    const go = () => {
      const client = this.client;
      if (this.stopping || !client) return;
      this.attempt = { connected: false, refusedV5: false, error: undefined };
      const { username, password } = this.transport();
      // Per attempt: the version this broker gets, and MQTT 5's session expiry only where it exists.
      client.options.protocolVersion = next.protocolVersion;
      if (next.protocolVersion === 5)
        client.options.properties = {
          sessionExpiryInterval: this.opts.sessionExpirySec ?? 7 * 24 * 3600,
          // Brokers never send more than this [MQTT-3.1.2-24]; 3.1.1 brokers are held to it by the gate.
          maximumPacketSize: AGENT_MAX_PACKET_SIZE,
          requestResponseInformation: true,
        };
      else delete client.options.properties;
      client.options.username = username ?? this.opts.username;
      client.options.password = password ?? this.opts.password;
      client.reconnect({ incomingStore: this.incomingStore, outgoingStore: this.outgoingStore });
    };
    // Even "at once" waits for the next turn of the event loop: the 'close' that got us here is
    // still being handled by MQTT.js's own listeners.
    this.retryTimer = setTimeout(go, Math.max(0, next.delayMs));
  }

  private transport(): { build: StreamBuilder; username: string | undefined; password: string | undefined } {
    const t = this.builders.get(this.failover.url);
    if (!t) throw new Error(`no transport for ${redactUrl(this.failover.url)}`);
    return t;
  }

  private async afterConnect(
    client: MqttClient,
    sessionPresent: boolean,
    reconnect: boolean,
    url: string,
  ): Promise<void> {
    try {
      // Subscribe at every connect, even with a session present: a persisted session may predate a
      // subscription this version needs. Retain Handling 1 sends retained messages only for a new
      // subscription, and Retain As Published keeps the retain flag on live deliveries, so a retained
      // command is recognised and refused (MQTT 5 § 3.8.3.1; 3.1.1 brokers clear the flag).
      // One topic per SUBSCRIBE: some brokers (aedes over Redis) hang on multi-topic subscribes.
      for (const topic of this.opts.subscriptions)
        await client.subscribeAsync(topic, { qos: 1, rap: true, rh: 1 });
      const protocolVersion = this.failover.protocolVersion;
      for (const l of [...this.connectListeners])
        await l({ protocolVersion, sessionPresent, reconnect, url });
    } catch (err) {
      this.opts.log.error(
        { err },
        'setting up the session after connect failed; dropping the connection to retry',
      );
      client.stream?.destroy();
    }
  }
}

// Kept here too: the CLI and tests import it from the session.
export { redactUrl };

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
