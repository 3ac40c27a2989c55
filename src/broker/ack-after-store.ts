/**
 * A QoS 1 PUBACK only once the message is stored (docs/brokers.md § What survives a broker restart).
 * aedes 2.0.0-beta.1 writes the PUBACK first and publishes after (lib/handlers/publish.js,
 * enqueuePublish): a broker killed in between has acknowledged a message it never queued for its
 * offline subscribers, nor retained — the sender will not send it again. With state on disk that
 * window is a LevelDB write wide, and a SIGKILL right after a burst lost the last message of it.
 *
 * Now the bytes aedes writes to a publishing client are held from the moment its QoS 1 PUBLISH is
 * authorized until aedes calls `published` for it (retained stored, offline copies queued,
 * online subscribers served), then written in their order. aedes handles one client's packets
 * one at a time, so at most one hold per client is open. A publish that fails never gets its
 * PUBACK: the connection closes and the client sends it again. QoS 2 is stored before its PUBREC
 * already; QoS 0 has no acknowledgement.
 */
import type net from 'node:net';
import type { Aedes, Client } from 'aedes';

type Write = net.Socket['write'];

export function ackAfterStore(aedes: Aedes): void {
  const held = new WeakMap<Client, (() => void)[]>();
  const authorize = aedes.authorizePublish.bind(aedes);
  const published = aedes.published.bind(aedes);

  aedes.authorizePublish = (client, packet, done) =>
    authorize(client, packet, (err) => {
      if (!err && client !== null && packet.qos === 1) hold(client);
      done(err);
    });
  aedes.published = (packet, client, done) => {
    if (client !== null) release(client);
    published(packet, client, done);
  };

  function hold(client: Client): void {
    const socket = client.conn as net.Socket;
    if (held.has(client)) return;
    const queue: (() => void)[] = [];
    held.set(client, queue);
    const write = socket.write;
    // Own property on this one socket (never the prototype): removed again at release.
    socket.write = ((...args: Parameters<Write>) => {
      queue.push(() => write.apply(socket, args));
      return true;
    }) as Write;
    // A connection that closes while held needs nothing: its held bytes, PUBACK included, are dropped with it.
  }

  function release(client: Client): void {
    const queue = held.get(client);
    if (!queue) return;
    held.delete(client);
    delete (client.conn as Partial<net.Socket>).write;
    for (const write of queue) write();
  }
}
