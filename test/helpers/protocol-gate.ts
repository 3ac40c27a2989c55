import net from 'node:net';

/**
 * A front for a real broker that turns away MQTT 5 the way brokers without it
 * do, and passes 3.1.1 through untouched:
 * - refuse: a CONNACK with return code 1 (unacceptable protocol version), as a
 *   3.1.1-only Mosquitto 1.x answers, then close;
 * - hangup: close without any CONNACK, as RabbitMQ before 3.13 does.
 * The broker behind it is a real one; only its MQTT 5 is hidden.
 */
export class ProtocolGate {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  /** Protocol levels seen in CONNECT packets, in order (5, 4, …). */
  readonly levels: number[] = [];

  constructor(
    private readonly upstreamPort: number,
    private readonly mode: 'refuse' | 'hangup' = 'refuse',
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => client.destroy());
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const level = connectLevel(head);
        if (level === undefined) return; // not all of the variable header yet
        client.off('data', onData);
        this.levels.push(level);
        if (level === 5) {
          if (this.mode === 'refuse') client.end(Buffer.from([0x20, 0x02, 0x00, 0x01]));
          else client.end();
          return;
        }
        const upstream = net.connect(this.upstreamPort, '127.0.0.1', () => {
          upstream.write(head);
          client.pipe(upstream).pipe(client);
        });
        this.sockets.add(upstream);
        upstream.on('close', () => {
          this.sockets.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
      };
      client.on('data', onData);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

/** The protocol level of a CONNECT packet (MQTT 3.1.1 § 3.1.2.2), or undefined until enough bytes are in. */
function connectLevel(buf: Buffer): number | undefined {
  // Fixed header: type byte, then the remaining length in 1-4 bytes of 7 bits each.
  let i = 1;
  while (i < buf.length && i <= 4 && (buf[i]! & 0x80) !== 0) i++;
  if (i >= buf.length) return undefined;
  const nameAt = i + 1;
  if (buf.length < nameAt + 2) return undefined;
  const nameLen = buf.readUInt16BE(nameAt);
  const levelAt = nameAt + 2 + nameLen;
  return levelAt < buf.length ? buf[levelAt] : undefined;
}
