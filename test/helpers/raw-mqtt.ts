/**
 * A raw MQTT client for conformance tests: it sends exactly the packets a test writes (mqtt-packet),
 * answers nothing on its own (no automatic PUBACK), and records every packet the broker sends, so a
 * test sees what a strict client would see (a PUBLISH carrying a property MQTT forbids there fails
 * to parse and is recorded as an `error`).
 */
import net from 'node:net';
import mqttPacket, { type IConnackPacket, type IPublishPacket, type Packet } from 'mqtt-packet';
import { withDeadline } from './wait.js';

export type Sent = Parameters<typeof mqttPacket.generate>[0];

export class RawClient {
  readonly packets: Packet[] = [];
  readonly errors: Error[] = [];
  closed = false;
  private waiters: { pred: (p: Packet) => boolean; resolve: (p: Packet) => void }[] = [];
  private closeWaiters: (() => void)[] = [];

  private constructor(
    readonly socket: net.Socket,
    readonly version: 4 | 5,
  ) {
    const parser = mqttPacket.parser({ protocolVersion: version });
    parser.on('packet', (p: Packet) => {
      this.packets.push(p);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(p)) return true;
        w.resolve(p);
        return false;
      });
    });
    parser.on('error', (e: Error) => this.errors.push(e));
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  /** Opens a TCP connection; nothing is sent yet. */
  static async open(port: number, version: 4 | 5 = 5): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      10_000,
      'a TCP connection to the broker',
    );
    return new RawClient(socket, version);
  }

  /** Opens a connection, sends a CONNECT and returns its CONNACK. */
  static async connect(
    port: number,
    connect: Partial<Extract<Sent, { cmd: 'connect' }>>,
    version: 4 | 5 = 5,
  ): Promise<{ client: RawClient; connack: IConnackPacket }> {
    const client = await RawClient.open(port, version);
    client.send({
      cmd: 'connect',
      protocolVersion: version,
      clean: true,
      keepalive: 60,
      clientId: '',
      ...connect,
    });
    const connack = (await client.next((p) => p.cmd === 'connack', 'a CONNACK')) as IConnackPacket;
    return { client, connack };
  }

  send(packet: Sent): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.version }));
  }

  /** Writes raw bytes (a packet mqtt-packet would not build). */
  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first packet (already received or yet to come) that satisfies pred. */
  next(pred: (p: Packet) => boolean, what: string, ms = 10_000): Promise<Packet> {
    const seen = this.packets.find(pred);
    if (seen) return Promise.resolve(seen);
    return withDeadline(new Promise<Packet>((resolve) => this.waiters.push({ pred, resolve })), ms, what);
  }

  publishes(topic?: string): IPublishPacket[] {
    return this.packets.filter(
      (p): p is IPublishPacket => p.cmd === 'publish' && (topic === undefined || p.topic === topic),
    );
  }

  /** Subscribes and waits for the SUBACK; returns its reason codes. */
  async subscribe(
    subscriptions: { topic: string; qos: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number }[],
    messageId: number,
    properties?: { subscriptionIdentifier?: number },
  ): Promise<number[]> {
    this.send({ cmd: 'subscribe', messageId, subscriptions, ...(properties && { properties }) });
    const ack = await this.next((p) => p.cmd === 'suback' && p.messageId === messageId, 'a SUBACK');
    return (ack as { granted: number[] }).granted;
  }

  /** Resolves when the broker has closed the connection. */
  whenClosed(what: string, ms = 10_000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return withDeadline(new Promise<void>((resolve) => this.closeWaiters.push(resolve)), ms, what);
  }

  /** Closes the TCP connection without a DISCONNECT (a dropped network: the will goes out). */
  drop(): Promise<void> {
    this.socket.destroy();
    return this.whenClosed('the socket to close');
  }

  /** A clean DISCONNECT, then waits for the broker to close. */
  disconnect(properties?: { sessionExpiryInterval?: number }): Promise<void> {
    this.send({ cmd: 'disconnect', ...(properties && { properties }) });
    return this.whenClosed('the broker to close after DISCONNECT');
  }
}
