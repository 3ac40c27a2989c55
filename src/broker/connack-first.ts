/**
 * [MQTT-3.2.0-1] "The first packet sent from the Server to the Client MUST be a CONNACK".
 * aedes 2.0.0-beta.1 breaks it for a persistent session: its CONNECT restores the session's
 * subscriptions (restoreSubs) before it stores the will, registers the client and writes the
 * CONNACK, and a message matching one of them in that window is written at once. MQTT.js 5 then
 * hangs until `connack timeout`: it handles incoming packets one at a time, finishes a QoS 1
 * PUBLISH only once its PUBACK is sent, and queues that PUBACK until it is connected — which the
 * CONNACK behind it would have told it. Clustered, the window is several Redis round trips wide,
 * and a message published on another broker just before a client resumes its session lands in it.
 *
 * Deliveries to a connecting client are now held until its CONNACK is out (or its connection is
 * gone), then made in their order. They must be wrapped in preConnect: restoreSubs captures
 * client.deliver0 / client.deliverQoS when it subscribes.
 */
import type { Client } from 'aedes';

type Deliver = (packet: unknown, cb: () => void) => void;

/** The parts of an aedes Client this fix touches (not in aedes' types). */
interface Deliverer {
  deliver0: Deliver;
  deliverQoS: Deliver;
  connackSent: boolean;
}

export class ConnackFirst {
  private readonly releases = new WeakMap<Client, () => void>();

  /** From preConnect, before aedes handles the CONNECT. */
  hold(client: Client): void {
    const c = client as unknown as Deliverer;
    const held: (() => void)[] = [];
    let open = false;
    const release = () => {
      if (open) return;
      open = true;
      this.releases.delete(client);
      for (const deliver of held.splice(0)) deliver();
    };
    for (const name of ['deliver0', 'deliverQoS'] as const) {
      const deliver = c[name];
      c[name] = (packet, cb) => {
        if (open || c.connackSent) return deliver(packet, cb);
        held.push(() => deliver(packet, cb));
      };
    }
    this.releases.set(client, release);
    // A connection that ends before its CONNACK: aedes' own delivery handles a closed client (and calls back).
    client.conn.once('close', release);
  }

  /** From the broker's `connackSent` event. */
  release(client: Client): void {
    this.releases.get(client)?.();
  }
}
