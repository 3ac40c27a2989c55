/**
 * Every message a live subscriber should get arrives, in the order its publisher sent it
 * ([MQTT-4.6.0-5]: a server treats each topic as an ordered topic). aedes 2.0.0-beta.1 breaks both
 * for retained messages, found by the fuzz run (test/fuzz):
 *
 * - It emits a retained message only once the persistence has stored it, while the client's next
 *   packets — parsed from the same read — are handled at once: a message published just after a
 *   retained one overtakes it. (QoS 1 and 2 messages wait for the offline queue the same way.)
 * - It numbers each message as it is published (aedes-packet `brokerCounter`) and, per subscriber,
 *   drops any message numbered below one already delivered (lib/client.js `dedupe`, meant for one
 *   message matching two of a client's subscriptions). So an overtaken message — a retained
 *   command, result or status — reached no live subscriber at all.
 *
 * Two fixes, on this broker instance only. keepPublishOrder: one client's messages are emitted in
 * the order it sent them (a message waits only behind a retained one still being stored, so the
 * common path is untouched). dropOnlyDuplicates: a subscriber drops a message only when it was
 * given that very message already (same broker, same number), whatever the numbers' order. The
 * numbers themselves stay as aedes gave them: its queues of QoS 1 messages find a message by its
 * number. docs/brokers.md § Order and delivery while it runs.
 */
import type { Aedes, Client } from 'aedes';

type Done = (err?: Error | null) => void;
interface Packet {
  retain?: boolean;
  brokerId?: string;
  brokerCounter?: number;
}
/** The parts of aedes these fixes touch (not in aedes' types). */
interface Internals {
  counter: number;
  mq: { emit: (packet: Packet, cb?: () => void) => void };
  publish: (packet: Packet, client: Client | null, done?: Done) => void;
}
interface Lane {
  /** The number of the retained message this client's later messages wait behind. */
  waiting: number | undefined;
  queue: [Packet, Done | undefined][];
}

export function keepPublishOrder(aedes: Aedes): void {
  const broker = aedes as unknown as Internals;
  const lanes = new WeakMap<Client, Lane>();
  const holders = new Map<number, [Client, Lane]>();

  const emit = broker.mq.emit.bind(broker.mq);
  broker.mq.emit = (packet, cb) => {
    emit(packet, cb);
    // Emitted: what its client sent after it may follow (not delivered: a PUBACK may take long).
    const holder = packet.brokerCounter === undefined ? undefined : holders.get(packet.brokerCounter);
    if (holder) release(...holder);
  };

  const publish = broker.publish.bind(aedes);
  broker.publish = (packet, client, done) => {
    if (client === null || typeof client !== 'object') return publish(packet, client, done);
    let lane = lanes.get(client);
    if (!lane) {
      if (!packet.retain) return publish(packet, client, done);
      lane = { waiting: undefined, queue: [] };
      lanes.set(client, lane);
    }
    lane.queue.push([packet, done]);
    drain(client, lane);
  };

  function release(client: Client, lane: Lane): void {
    if (lane.waiting === undefined) return;
    holders.delete(lane.waiting);
    lane.waiting = undefined;
    drain(client, lane);
  }

  function drain(client: Client, lane: Lane): void {
    while (lane.waiting === undefined) {
      const next = lane.queue.shift();
      if (!next) return void lanes.delete(client);
      const [packet, done] = next;
      if (!packet.retain) {
        publish(packet, client, done);
        continue;
      }
      // The number aedes-packet would give it, given now so that emit() above knows the message.
      const n = ++broker.counter;
      packet.brokerCounter = n;
      lane.waiting = n;
      holders.set(n, [client, lane]);
      publish(packet, client, (err) => {
        // Not stored, so never emitted: the lane must not wait for it.
        if (lane.waiting === n) release(client, lane);
        done?.(err);
      });
    }
  }
}

type Deliver = (packet: Packet, cb: () => void) => void;
/** Messages two overlapping subscriptions deliver together are a few apart: this many is plenty. */
const RECENT = 256;

/**
 * From preConnect, before aedes restores a session's subscriptions (which capture these functions),
 * and inside any other wrapper (connack-first.ts): aedes' filter runs right after this sets it up.
 */
export function dropOnlyDuplicates(client: Client): void {
  const c = client as unknown as { duplicates: Record<string, number> } & Record<string, Deliver>;
  const recent = new Set<string>();
  // deliverQoS hands a QoS 0 message to deliver0: that inner call was set up by the outer one.
  let inside = false;
  for (const name of ['deliver0', 'deliverQoS']) {
    const deliver = c[name] as Deliver;
    c[name] = (packet, cb) => {
      if (inside) return deliver(packet, cb);
      const { brokerId, brokerCounter } = packet;
      if (brokerId !== undefined && brokerCounter !== undefined) {
        const key = `${brokerId}:${brokerCounter}`;
        if (recent.has(key)) {
          c.duplicates[brokerId] = brokerCounter; // the same message again: aedes drops it
        } else {
          recent.add(key);
          if (recent.size > RECENT) recent.delete(recent.values().next().value as string);
          c.duplicates[brokerId] = brokerCounter - 1; // new to this client: aedes lets it through
        }
      }
      inside = true;
      try {
        deliver(packet, cb);
      } finally {
        inside = false;
      }
    };
  }
}
