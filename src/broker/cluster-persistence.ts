/**
 * Two fixes to aedes-persistence-redis@11 under aedes 2.0.0-beta.1, applied to the one
 * persistence instance a clustered broker owns (never to the library's prototypes).
 *
 * 1. A SUBSCRIBE listing several topics hung on a persistent session: aedes calls
 *    addSubscriptions(client, packet.subscriptions) once per topic of the packet, each with the
 *    whole list, and the library's BroadcastPersistence keeps one waiter per (client, first topic)
 *    — each call overwrites the last one's waiter, so all but one never resolve. Calls that pass
 *    the very same array now share one store-and-broadcast.
 * 2. A will left behind by a killed broker is published by a live broker 3 to 7 heartbeats later,
 *    by which time its client has usually reconnected to another broker and said `online`: that
 *    late retained `offline` would overwrite it. A will whose client has since connected to
 *    another broker is now dropped instead (the client's new connection carries its own will).
 */
import type { Logger } from '../log.js';

/** The parts of an aedes persistence these fixes touch. */
export interface RedisPersistence {
  addSubscriptions(
    client: { id: string },
    subs: object[],
    cb?: (...args: unknown[]) => void,
  ): Promise<unknown> | undefined;
  streamWill(brokers: Record<string, number>): AsyncIterable<StoredWill>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
}

export interface StoredWill {
  clientId: string;
  brokerId: string;
  topic: string;
  payload?: Buffer | string;
}

/** Why a will may not go out (the ACL of the account that left it), or undefined when it may. */
export type WillCheck = (will: StoredWill) => string | undefined;

/**
 * Where each client is connected across the cluster, from the `$SYS/<broker>/new/clients` and
 * `$SYS/<broker>/disconnect/clients` messages every aedes publishes to all brokers.
 */
export class ClientLocator {
  private readonly brokerOf = new Map<string, string>();

  connected(brokerId: string, clientId: string): void {
    this.brokerOf.set(clientId, brokerId);
  }

  disconnected(brokerId: string, clientId: string): void {
    // A disconnect from the broker a client has already left (a takeover) says nothing about the new one.
    if (this.brokerOf.get(clientId) === brokerId) this.brokerOf.delete(clientId);
  }

  /** The will was stored by a connection that has since been replaced by one on another broker. */
  isStale(will: StoredWill): boolean {
    const now = this.brokerOf.get(will.clientId);
    return now !== undefined && now !== will.brokerId;
  }

  /** Its will went out: the client is gone from the broker that stored it. */
  forget(will: StoredWill): void {
    this.disconnected(will.brokerId, will.clientId);
  }

  get size(): number {
    return this.brokerOf.size;
  }
}

export function shareConcurrentAddSubscriptions(persistence: RedisPersistence): void {
  const add = persistence.addSubscriptions.bind(persistence);
  const inFlight = new WeakMap<object[], Promise<unknown>>();
  persistence.addSubscriptions = (client, subs, cb) => {
    if (cb) return add(client, subs, cb);
    let shared = inFlight.get(subs);
    if (!shared) {
      shared = Promise.resolve(add(client, subs));
      inFlight.set(subs, shared);
    }
    return shared;
  };
}

export function dropStaleWills(
  persistence: RedisPersistence,
  locator: ClientLocator,
  log: Logger,
  check: WillCheck = () => undefined,
): void {
  const stream = persistence.streamWill.bind(persistence);
  persistence.streamWill = (brokers) => filterWills(stream(brokers), persistence, locator, log, check);
}

async function* filterWills(
  wills: AsyncIterable<StoredWill>,
  persistence: RedisPersistence,
  locator: ClientLocator,
  log: Logger,
  check: WillCheck,
): AsyncGenerator<StoredWill> {
  for await (const will of wills) {
    // Checked here, not only in authorizePublish: a refusal there would fail the whole sweep at
    // every heartbeat and hold back the wills behind it. (docs/security.md § Broker identities)
    const refusal = check(will);
    if (refusal !== undefined) {
      await persistence.delWill({ id: will.clientId, brokerId: will.brokerId });
      locator.forget(will);
      log.warn(
        { clientId: will.clientId, deadBroker: will.brokerId, topic: will.topic, reason: refusal },
        'refused the will of a client of a dead broker',
      );
      continue;
    }
    if (locator.isStale(will)) {
      await persistence.delWill({ id: will.clientId, brokerId: will.brokerId });
      log.info(
        { clientId: will.clientId, deadBroker: will.brokerId, topic: will.topic },
        'dropped the will a dead broker left behind: its client has reconnected to another broker',
      );
      continue;
    }
    log.info(
      { clientId: will.clientId, deadBroker: will.brokerId, topic: will.topic },
      'publishing the will of a client of a dead broker',
    );
    locator.forget(will);
    yield will;
  }
}
