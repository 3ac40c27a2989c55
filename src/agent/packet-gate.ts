/**
 * The agent's own packet size limit, counted on the byte stream before MQTT.js buffers a packet
 * (docs/security.md § Packet sizes). An MQTT 5 broker is told the limit in the CONNECT (Maximum
 * Packet Size) and must not send more [MQTT-3.1.2-24]; a 3.1.1 broker has no way to be told, and a
 * broker may ignore it. So every packet's fixed header is read as it arrives: a PUBLISH over the limit
 * is skipped byte by byte as it streams past (never held whole), and acknowledged when it is QoS 1 so
 * the broker does not send it again at every reconnect; any other packet that large ends the
 * connection (no broker sends a legitimate one).
 */
import { Transform, type Duplex, type TransformCallback } from 'node:stream';

/**
 * What the agent accepts: a request is at most 64 KiB of payload (the intake's own limit); the
 * other 64 KiB cover its topic and MQTT 5 properties (response topic, correlation data, user
 * properties). Everything else it subscribes to — statuses, fleet records, HA's birth message,
 * param values — is far smaller.
 */
export const AGENT_MAX_PACKET_SIZE = 128 * 1024;

const PUBLISH = 3;
/** Topic length, topic and packet id: all a QoS 1 PUBLISH needs to be acknowledged. */
const PUBLISH_HEAD_MAX = 2 + 65_535 + 2;

export interface Oversized {
  topic: string;
  size: number;
  qos: number;
}

export class PacketGate extends Transform {
  /** The fixed header being read (at most five bytes), and how many of them came in earlier chunks. */
  private header: number[] = [];
  private carried = 0;
  /** Where the header being read starts in the current chunk. */
  private headerAt = 0;
  /** Bytes of the current packet's body still to pass (or to skip). */
  private left = 0;
  private skipping: { qos: number; size: number; head: Buffer; acked: boolean } | undefined;

  constructor(
    private readonly limit: number,
    private readonly ack: (packetId: number) => void,
    private readonly dropped: (info: Oversized) => void,
  ) {
    super();
  }

  /**
   * Passes each chunk on in as few pieces as it can (whole runs of packets that fit): a burst of small
   * requests must not turn into one Buffer per header and body for MQTT.js to hold.
   */
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    /** Start of the bytes of this chunk that pass and are not pushed yet. */
    let from = 0;
    const flush = (end: number) => {
      if (end > from) this.push(chunk.subarray(from, end));
      from = end;
    };
    while (at < chunk.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - at);
        if (this.skipping) {
          flush(at);
          this.skip(chunk.subarray(at, at + n));
          from = at + n;
        }
        this.left -= n;
        at += n;
        if (this.left === 0) this.endSkip();
        continue;
      }
      // A fixed header: one byte, then a Variable Byte Integer of at most four bytes (MQTT § 2.2).
      if (this.header.length === this.carried) this.headerAt = at;
      this.header.push(chunk[at]!);
      at += 1;
      const h = this.header;
      if (h.length < 2 || (h[h.length - 1]! & 0x80) !== 0) {
        if (h.length >= 5) return done(new Error('malformed packet length from the broker'));
        if (at === chunk.length) {
          // The header goes on in the next chunk: hold its bytes until it is judged.
          flush(this.headerAt);
          from = at;
          this.carried = h.length;
        }
        continue;
      }
      let remaining = 0;
      for (let i = h.length - 1; i >= 1; i--) remaining = remaining * 128 + (h[i]! & 0x7f);
      const type = h[0]! >> 4;
      const size = h.length + remaining;
      const carried = h.slice(0, this.carried);
      this.header = [];
      this.carried = 0;
      this.left = remaining;
      if (size <= this.limit) {
        // What an earlier chunk held back goes first; the rest of the header is in this chunk's run.
        if (carried.length > 0) this.push(Buffer.from(carried));
      } else if (type === PUBLISH) {
        flush(carried.length > 0 ? from : this.headerAt);
        from = at;
        this.skipping = { qos: (h[0]! >> 1) & 3, size, head: Buffer.alloc(0), acked: false };
      } else {
        return done(new Error(`a packet of ${size} bytes from the broker (the agent accepts ${this.limit})`));
      }
      if (this.left === 0) this.endSkip();
    }
    flush(chunk.length);
    done();
  }

  /** Keeps only the PUBLISH's head (bounded), to name its topic and acknowledge it. */
  private skip(part: Buffer): void {
    const s = this.skipping!;
    if (s.head.length < PUBLISH_HEAD_MAX)
      s.head = Buffer.concat([s.head, part.subarray(0, PUBLISH_HEAD_MAX - s.head.length)]);
    if (s.acked || s.head.length < 2) return;
    const topicLength = s.head.readUInt16BE(0);
    if (s.qos !== 1 || s.head.length < 2 + topicLength + 2) return;
    s.acked = true;
    this.ack(s.head.readUInt16BE(2 + topicLength));
  }

  private endSkip(): void {
    const s = this.skipping;
    if (!s) return;
    this.skipping = undefined;
    const topicLength = s.head.length >= 2 ? s.head.readUInt16BE(0) : 0;
    const topic = s.head.subarray(2, 2 + Math.min(topicLength, 200)).toString();
    this.dropped({ topic, size: s.size, qos: s.qos });
  }
}

/**
 * Puts a PacketGate between the transport and MQTT.js, which reads the transport only through the
 * one `pipe` it calls on it.
 */
export function gateStream(
  stream: Duplex,
  limit: number,
  dropped: (info: Oversized) => void,
  refused: (err: Error) => void,
): Duplex {
  // PUBACK with Remaining Length 2: "success" in MQTT 5, the only form in 3.1.1. [MQTT-3.4]
  const ack = (id: number) => stream.write(Buffer.from([0x40, 0x02, id >> 8, id & 0xff]));
  const gate = new PacketGate(limit, ack, dropped);
  gate.on('error', (err: Error) => {
    refused(err);
    stream.destroy();
  });
  const pipe = stream.pipe.bind(stream);
  stream.pipe = (<T extends NodeJS.WritableStream>(dest: T, opts?: { end?: boolean }) => {
    pipe(gate);
    return gate.pipe(dest, opts);
  }) as typeof stream.pipe;
  return stream;
}
