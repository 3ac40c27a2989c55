import net from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

/**
 * A TCP proxy between an agent and its broker that can cut, stall or blackhole
 * the connection — the network faults a test cannot get from a real broker.
 * - pass: bytes flow.
 * - blackhole: connections stay open but nothing is forwarded either way (a
 *   half-open link, or a broker that stopped answering); stallOpen() does it
 *   to the open connections only.
 * - refuse: new connections are closed at once (the broker is "down").
 * slowConnack(ms) holds what the broker sends on each new connection (its CONNACK first) until ms
 * after the connection opened: a broker too busy to answer a CONNECT in time.
 * cut() destroys every open connection (a RST, as when a cable is pulled and
 * the far end notices).
 */
export class FaultProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket; dead: boolean }>();
  mode: ProxyMode = 'pass';
  port = 0;
  /** Connections accepted so far (reconnects show up here). */
  accepted = 0;
  /** Client → broker bytes held back from the first chunk that holds `marker` on (a slow uplink). */
  private hold: { marker: Buffer; queue: Buffer[]; to?: net.Socket; seen: () => void } | undefined;
  private answerDelayMs = 0;
  /** Broker → client bytes held back once a client → broker chunk held `marker` (answers that come late). */
  private answers: { marker: Buffer; queue: Buffer[]; to?: net.Socket; seen: () => void } | undefined;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      this.accepted++;
      if (this.mode === 'refuse') {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      const pair = { client, upstream, dead: false };
      this.pairs.add(pair);
      // The broker's first bytes wait until the delay is over; later ones queue behind them, in order.
      let downlinkHeld: Buffer[] | undefined;
      if (this.answerDelayMs > 0) {
        const held: Buffer[] = [];
        downlinkHeld = held;
        setTimeout(() => {
          downlinkHeld = undefined;
          if (!pair.dead && !client.destroyed) for (const c of held) client.write(c);
        }, this.answerDelayMs);
      }
      const forward = (from: net.Socket, to: net.Socket) =>
        from.on('data', (chunk: Buffer) => {
          if (this.mode !== 'pass' || pair.dead) return;
          if (from === upstream && downlinkHeld) {
            downlinkHeld.push(chunk);
            return;
          }
          const a = this.answers;
          if (a && from === client && a.to === undefined && chunk.includes(a.marker)) {
            a.to = client;
            a.seen();
          }
          if (a && from === upstream && a.to === client) {
            a.queue.push(chunk);
            return;
          }
          const h = from === client ? this.hold : undefined;
          if (h && (h.to !== undefined || chunk.includes(h.marker))) {
            if (h.to === undefined) h.seen();
            h.to = to;
            h.queue.push(chunk);
            return;
          }
          to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const close = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get open(): number {
    return this.pairs.size;
  }

  /**
   * Holds what clients send from the first chunk containing `marker` on: `held` resolves when it came,
   * `release()` sends it all on, in order. Messages of others overtake it at the broker.
   */
  holdUplink(marker: string): { held: Promise<void>; release: () => void } {
    let seen: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (seen = resolve));
    const h = { marker: Buffer.from(marker), queue: [] as Buffer[], seen } as NonNullable<typeof this.hold>;
    this.hold = h;
    return {
      held,
      release: () => {
        this.hold = undefined;
        for (const chunk of h.queue.splice(0)) h.to?.write(chunk);
      },
    };
  }

  /**
   * From the first client chunk containing `marker` on, that connection hears nothing from the broker
   * (its PUBACK to that message first) while what it sends still flows: `held` resolves when the marker
   * came, `release()` sends the answers on, in order.
   */
  holdAnswersAfter(marker: string): { held: Promise<void>; release: () => void } {
    let seen: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (seen = resolve));
    const a = { marker: Buffer.from(marker), queue: [] as Buffer[], seen } as NonNullable<
      typeof this.answers
    >;
    this.answers = a;
    return {
      held,
      release: () => {
        this.answers = undefined;
        for (const chunk of a.queue.splice(0)) if (!a.to?.destroyed) a.to?.write(chunk);
      },
    };
  }

  /** New connections hear nothing from the broker (its CONNACK first) until `ms` after they opened. */
  slowConnack(ms: number): void {
    this.answerDelayMs = ms;
  }

  /** The open connections go silent (half-open) while new ones follow `mode`. */
  stallOpen(): void {
    for (const p of this.pairs) p.dead = true;
  }

  cut(): void {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
