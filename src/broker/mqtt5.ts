/**
 * MQTT 5 behaviours aedes 2.0.0-beta.1 gets wrong, put right around its hooks (docs/brokers.md
 * § MQTT 5 conformance). Receive Maximum needs aedes itself changed: patches/README.md.
 *
 * - `$`-topics are the broker's own: a client's PUBLISH to one is refused, with or without users.
 *   aedes acts on `$SYS/<other broker>/new/clients` by closing the client named in the payload,
 *   so without users any local client could disconnect any other with one forged message.
 * - A will is published without its `WillDelayInterval`: that is a CONNECT property, a protocol
 *   error in a PUBLISH (strict clients such as Paho refuse the packet, and the retained copy).
 *   The delay itself is honoured by aedes (capped by the session's expiry).
 * - QoS 2 state belongs to a session: a client that starts a new one (CONNACK session present 0)
 *   and reuses a packet id left unreleased by the old one (a device that rebooted mid-exchange
 *   starts counting from 1 again) gets its message delivered, not acknowledged as a duplicate
 *   and lost. [MQTT-4.3.3], [MQTT-3.1.2-4]
 * - A message matching several of a client's subscriptions carries the Subscription Identifier
 *   of each of them: aedes sends one copy, with the identifier of whichever matched first.
 *   [MQTT-3.3.4-3], [MQTT-3.3.4-4]
 */
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes';
import type { Logger } from '../log.js';
import { topicMatches } from './acl.js';

type AuthorizePublish = (
  client: Client | null,
  packet: PublishPacket,
  done: (err?: Error | null) => void,
) => void;
type AuthorizeForward = (client: Client, packet: AedesPublishPacket) => AedesPublishPacket | null | void;

/** aedes' persistence, as far as this module uses it (not in aedes' types). */
interface IncomingStore {
  incomingDelPacket(client: Client, packet: { messageId: number }): Promise<unknown>;
}

/** A client's live subscriptions, by filter (aedes' Client.subscriptions; not in its types). */
type Subscriptions = Record<string, { si?: number } | undefined>;

export class Mqtt5Conformance {
  /** Clients in a new session → the QoS 2 packet ids they have used in it. */
  private readonly freshSessions = new WeakMap<Client, Set<number>>();
  /** Clients with at least one subscription carrying an identifier. */
  private readonly identifying = new WeakSet<Client>();
  private store: IncomingStore | undefined;

  constructor(private readonly log: Logger) {}

  /**
   * Once the broker exists: wraps its authorizePublish and authorizeForward hooks (aedes calls them
   * through the instance), follows sessions and subscriptions, and warns when aedes is unpatched.
   */
  attach(aedes: Aedes): void {
    const hooks = aedes as unknown as {
      persistence: IncomingStore;
      authorizePublish: AuthorizePublish;
      authorizeForward: AuthorizeForward;
    };
    this.store = hooks.persistence;
    hooks.authorizePublish = this.authorizePublish(hooks.authorizePublish);
    hooks.authorizeForward = this.authorizeForward(hooks.authorizeForward);
    aedes.on('connackSent', (connack, client) => {
      if (!connack.sessionPresent) this.freshSessions.set(client, new Set());
      this.noteIdentifiers(client);
    });
    aedes.on('subscribe', (_subs, client) => this.noteIdentifiers(client));
    // The patch adds this option (patches/README.md); a package installed without it runs unpatched.
    if ((aedes as unknown as { inflightQueueLimit?: number }).inflightQueueLimit === undefined)
      this.log.warn(
        'aedes is not patched: clients get more unacknowledged QoS 1/2 messages than their Receive Maximum — ' +
          'install homelab-cmd from its repository with npm ci (patches/README.md), or use Mosquitto (docs/brokers.md)',
      );
  }

  /** Wraps the broker's authorizePublish: what is refused or changed before it judges a PUBLISH. */
  authorizePublish(inner: AuthorizePublish): AuthorizePublish {
    return (client, packet, done) => {
      // Wills of closed clients come here with their client; only the broker's own messages come without.
      if (client !== null && packet.topic.startsWith('$')) {
        this.log.warn(
          { clientId: client.id, topic: packet.topic.slice(0, 200) },
          'refused a publish to a $-topic: they are reserved for the broker',
        );
        return done(new Error('$-topics are reserved for the broker'));
      }
      dropWillDelay(packet);
      const stale = client === null ? undefined : this.forgetStaleQos2(client, packet);
      if (stale === undefined) return inner(client, packet, done);
      stale.then(
        () => inner(client, packet, done),
        () => inner(client, packet, done),
      );
    };
  }

  /** Wraps the broker's authorizeForward: the identifiers are added first, so its size check counts them. */
  authorizeForward(inner: AuthorizeForward): AuthorizeForward {
    return (client, packet) => inner(client, this.withEveryIdentifier(client, packet));
  }

  /**
   * Before aedes looks up a QoS 2 packet id for the first time in a new session, whatever an
   * earlier session left under it is deleted: it is not this session's state.
   */
  private forgetStaleQos2(client: Client, packet: PublishPacket): Promise<unknown> | undefined {
    const used = this.freshSessions.get(client);
    const id = packet.messageId;
    if (used === undefined || packet.qos !== 2 || id === undefined || used.has(id) || !this.store)
      return undefined;
    used.add(id);
    return this.store.incomingDelPacket(client, { messageId: id });
  }

  private noteIdentifiers(client: Client): void {
    const subs = (client as unknown as { subscriptions: Subscriptions }).subscriptions;
    if (Object.values(subs).some((s) => s?.si !== undefined)) this.identifying.add(client);
  }

  private withEveryIdentifier(client: Client, packet: AedesPublishPacket): AedesPublishPacket {
    // A retained message sent on SUBSCRIBE (no brokerId) answers that one subscription: aedes set its identifier.
    if (!this.identifying.has(client) || !packet.brokerId) return packet;
    const subs = (client as unknown as { subscriptions: Subscriptions }).subscriptions;
    const ids: number[] = [];
    for (const [filter, sub] of Object.entries(subs))
      if (sub?.si !== undefined && topicMatches(filter, packet.topic)) ids.push(sub.si);
    const properties: Record<string, unknown> = { ...packet.properties };
    if (ids.length === 0) delete properties.subscriptionIdentifier;
    else properties.subscriptionIdentifier = ids.length === 1 ? ids[0] : ids;
    // A copy: aedes shares a packet's properties between the subscribers it fans out to.
    return { ...packet, properties } as AedesPublishPacket;
  }
}

/** WillDelayInterval belongs to the CONNECT's will properties, never to a PUBLISH (MQTT 5 § 3.3.2.3). */
function dropWillDelay(packet: PublishPacket): void {
  const props = packet.properties as Record<string, unknown> | undefined;
  if (props === undefined || !('willDelayInterval' in props)) return;
  const { willDelayInterval: _delay, ...rest } = props;
  packet.properties = rest as PublishPacket['properties'];
}
