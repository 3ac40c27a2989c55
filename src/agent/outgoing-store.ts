/**
 * The session's QoS 1 messages that no broker has acknowledged yet (MQTT.js's outgoing store), and what
 * happens to them when the agent connects to a broker that holds no session for it (docs/brokers.md
 * § Failover).
 *
 * MQTT.js sends its stored messages at the CONNACK, before its `connect` event, so before the agent has
 * subscribed. On a broker with the agent's session that is what MQTT asks for: the subscriptions are
 * there. On one without it (another broker after a failover, or one that lost its sessions), a stale
 * `online` from the last connection arrived first, and a controller that answered it with a command
 * reached a broker with nobody subscribed: the command was dropped (MQTT 5 § 3.2.2.1.1 has the client
 * discard such state; the agent cannot, since results finished meanwhile are in it). So at a CONNACK
 * without a session they are held back, and sent again once the agent is subscribed there.
 */
import { Store, type MqttClient, type IPublishPacket, type Packet } from 'mqtt';

type PacketCallback = Parameters<Store['del']>[1];

interface Held {
  packet: IPublishPacket;
  /** Whoever published it waits on this (MQTT.js's PUBACK callback). */
  cb: MqttClient['outgoing'][number]['cb'] | undefined;
}

export class OutgoingStore extends Store {
  /** Message ids in the store, in the order they were put: MQTT.js's Store cannot list them. */
  private readonly ids = new Set<number>();
  private held: Held[] = [];

  override put(packet: Packet, cb: () => void): this {
    if (packet.messageId !== undefined) this.ids.add(packet.messageId);
    return super.put(packet, cb);
  }

  override del(packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    if (packet.messageId !== undefined) this.ids.delete(packet.messageId);
    return super.del(packet, cb);
  }

  /** How many are held for the next subscribed connection. */
  get heldCount(): number {
    return this.held.length;
  }

  /**
   * At a CONNACK without a session, before MQTT.js reads the store: every stored message and the callback
   * its publisher waits on move out of MQTT.js's reach, to be sent by `release`.
   */
  hold(client: MqttClient): void {
    for (const messageId of [...this.ids]) {
      super.del({ messageId }, (err, packet) => {
        if (err || packet?.cmd !== 'publish') return; // PUBREL is QoS 2's, which the agent never uses
        this.held.push({ packet, cb: client.outgoing[messageId]?.cb });
      });
      // MQTT.js would otherwise pair a new message that reuses the id with this one's publisher.
      delete client.outgoing[messageId];
    }
    this.ids.clear();
  }

  /** Subscribed on this connection: the held messages go out again, each to the publisher it came from. */
  release(client: MqttClient, mqtt5: boolean): void {
    for (const { packet, cb } of this.held.splice(0)) {
      // A 3.1.1 broker (the fallback) takes no properties, as session.ts publish drops them.
      const properties = mqtt5 ? packet.properties : undefined;
      client.publish(
        packet.topic,
        packet.payload,
        { qos: packet.qos, retain: packet.retain, ...(properties ? { properties } : {}) },
        // MQTT.js calls back with no error on success, whatever its type says.
        (err, sent) => cb?.(err as Error, sent),
      );
    }
  }

  /** The session stops: a held message is not sent (a final stays in the journal's outbox for the next start). */
  failHeld(): void {
    for (const { cb } of this.held.splice(0)) cb?.(new Error('Connection closed'));
  }
}
