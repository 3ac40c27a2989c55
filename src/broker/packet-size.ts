/**
 * Packet size limits of the embedded broker (docs/security.md § Broker identities, "Packet sizes").
 *
 * - A CONNECT is refused by its fixed header alone, before the parser buffers its body and before
 *   authentication: the first bytes of every connection are read here, and a Remaining Length over
 *   the CONNECT limit closes the socket. Only the first packet is watched; after it, the socket is
 *   aedes' own again.
 * - Any later packet over broker.max_packet_size: aedes' own `maximumPacketSize` reads the fixed
 *   header as it arrives and disconnects the client (MQTT 5: DISCONNECT 0x95 Packet too large)
 *   before the rest is buffered; the limit is announced in the CONNACK. [MQTT-3.2.2-15]
 * - A delivery larger than the Maximum Packet Size the receiving client announced is dropped, not
 *   sent. [MQTT-3.1.2-24]
 */
import type net from 'node:net';

/**
 * The largest CONNECT accepted. A CONNECT carries a client id, a username, a password and a will:
 * the agent's will is `offline` on `P/H/status` (well under 1 KiB), and MQTT allows each string up to
 * 64 KiB, so 64 KiB leaves room for a long password or a sizeable will from other clients while a
 * hostile CONNECT costs at most that much memory per connection before it is refused.
 */
export const MAX_CONNECT_SIZE = 64 * 1024;

/** broker.max_packet_size's default: far above the agent's largest result (two 10 kB outputs plus fields). */
export const DEFAULT_MAX_PACKET_SIZE = 1024 * 1024;

export type FixedHeader =
  | { state: 'incomplete' }
  | { state: 'malformed' }
  | { state: 'complete'; type: number; remaining: number; headerLength: number };

/** MQTT § 2.2: one byte of type and flags, then a Variable Byte Integer of at most four bytes. */
export function readFixedHeader(buf: Buffer): FixedHeader {
  if (buf.length < 2) return { state: 'incomplete' };
  let remaining = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    const byte = buf[i];
    if (byte === undefined) return { state: 'incomplete' };
    remaining += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { state: 'complete', type: buf[0]! >> 4, remaining, headerLength: i + 1 };
    multiplier *= 128;
  }
  return { state: 'malformed' };
}

/** Bytes a packet takes on the wire, from its Remaining Length. */
export function wireSize(remaining: number): number {
  return 1 + varIntSize(remaining) + remaining;
}

/**
 * Watches the first packet's fixed header on `socket` (read before aedes' parser sees the bytes):
 * over `limit`, or malformed, the socket is destroyed and `refuse` told why.
 * Call before aedes.handle(socket).
 */
export function limitFirstPacket(socket: net.Socket, limit: number, refuse: (size: number) => void): void {
  const read = socket.read.bind(socket);
  let head = Buffer.alloc(0);
  const done = () => {
    // Back to the prototype's read: after the first packet the gate costs nothing.
    delete (socket as { read?: unknown }).read;
  };
  socket.read = (size?: number) => {
    const chunk = read(size) as Buffer | string | null;
    if (chunk === null || typeof chunk === 'string') return chunk;
    // At most five bytes are kept here, whatever arrives.
    if (head.length < 5) head = Buffer.concat([head, chunk.subarray(0, 5 - head.length)]);
    const h = readFixedHeader(head);
    if (h.state === 'incomplete') return chunk;
    done();
    const bytes = h.state === 'complete' ? wireSize(h.remaining) : Infinity;
    if (bytes <= limit) return chunk;
    refuse(bytes);
    socket.destroy();
    return null;
  };
}

interface OutgoingPublish {
  topic: string;
  payload: Buffer | string;
  qos?: number;
  properties?: Record<string, unknown>;
}

/** The size of a PUBLISH as written to a client, counted from its parts (MQTT 5 § 3.3). */
export function publishWireSize(packet: OutgoingPublish, protocolVersion: number): number {
  let remaining = 2 + Buffer.byteLength(packet.topic) + ((packet.qos ?? 0) > 0 ? 2 : 0);
  remaining += Buffer.byteLength(packet.payload);
  if (protocolVersion === 5) {
    const props = propertiesSize(packet.properties ?? {});
    remaining += varIntSize(props) + props;
  }
  return wireSize(remaining);
}

function propertiesSize(props: Record<string, unknown>): number {
  const str = (v: unknown) => 2 + (typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.byteLength(v) : 0);
  let n = 0;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === 'payloadFormatIndicator') n += 2;
    else if (key === 'messageExpiryInterval') n += 5;
    else if (key === 'topicAlias') n += 3;
    else if (key === 'responseTopic' || key === 'correlationData' || key === 'contentType')
      n += 1 + str(value);
    else if (key === 'subscriptionIdentifier')
      for (const id of [value].flat()) n += 1 + varIntSize(Number(id));
    else if (key === 'userProperties' && typeof value === 'object' && value !== null)
      for (const [k, v] of Object.entries(value))
        for (const one of [v].flat()) n += 1 + str(k) + str(String(one));
  }
  return n;
}

function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}
