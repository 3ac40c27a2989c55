import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { withDeadline } from './wait.js';

export interface Msg {
  topic: string;
  text: string;
  packet: IPublishPacket;
}

/** A real MQTT.js client that records every message, with waits keyed on what arrives. */
export class TestClient {
  readonly messages: Msg[] = [];
  /** The CONNACK of the first connection (its sessionPresent flag). */
  connack: IConnackPacket | undefined;
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m = { topic, text: payload.toString(), packet };
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  /**
   * Records from before the CONNACK: a resumed session's queued messages can come in the same read
   * as the CONNACK, and MQTT.js emits them (process.nextTick) before an awaited connectAsync returns.
   */
  static async connect(url: string, opts: IClientOptions = {}): Promise<TestClient> {
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...opts,
    });
    const recorder = new TestClient(client);
    await new Promise<void>((resolve, reject) => {
      const settle = () => {
        client.off('connect', connected);
        client.off('end', connected);
        client.off('error', failed);
      };
      const connected = (connack?: IConnackPacket) => {
        recorder.connack = connack;
        settle();
        resolve();
      };
      // As connectAsync does: a refused or timed-out CONNECT ends the client and rejects.
      const failed = (err: Error) => {
        settle();
        client.end();
        reject(err);
      };
      client.on('connect', connected);
      client.on('end', connected);
      client.on('error', failed);
    });
    return recorder;
  }

  async sub(...topics: string[]): Promise<void> {
    for (const t of topics) await this.client.subscribeAsync(t, { qos: 1 });
  }

  /** The first message (already received or yet to come) that satisfies pred. */
  wait(pred: (m: Msg) => boolean, ms = 10_000, what = 'a message'): Promise<Msg> {
    const seen = this.messages.find(pred);
    if (seen) return Promise.resolve(seen);
    return withDeadline(new Promise<Msg>((resolve) => this.waiters.push({ pred, resolve })), ms, what);
  }

  /** Waits for a message that arrives after this call. */
  next(pred: (m: Msg) => boolean, ms = 10_000, what = 'a message'): Promise<Msg> {
    return withDeadline(new Promise<Msg>((resolve) => this.waiters.push({ pred, resolve })), ms, what);
  }

  waitJson<T = Record<string, unknown>>(
    topic: string,
    pred: (v: T) => boolean = () => true,
    ms = 10_000,
  ): Promise<T> {
    return this.wait(
      (m) => m.topic === topic && m.text !== '' && pred(JSON.parse(m.text) as T),
      ms,
      `JSON on ${topic}`,
    ).then((m) => JSON.parse(m.text) as T);
  }

  on(topic: string): Msg[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  pub(
    topic: string,
    payload: string | Buffer,
    opts: Parameters<MqttClient['publishAsync']>[2] = {},
  ): Promise<unknown> {
    return this.client.publishAsync(topic, payload, { qos: 1, ...opts });
  }

  async end(): Promise<void> {
    await this.client.endAsync(true);
  }
}
