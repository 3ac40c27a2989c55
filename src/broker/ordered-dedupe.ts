/**
 * No QoS 1 message dropped for arriving out of order (docs/brokers.md § What survives a broker restart).
 * aedes 2.0.0-beta.1 keeps, per client, only the highest broker counter it delivered (lib/client.js,
 * dedupe) and drops any message with a lower one as a duplicate. Counters are given when a message
 * is published, but it reaches subscribers only after its persistence steps (retained stored,
 * offline copies queued): with state on disk those take a LevelDB round trip each, so a retained
 * result published first is overtaken by a message published just after — and never reaches a
 * subscriber that is online. The chaos run (test/chaos) saw finals missing on P/H/result/ID and on
 * MQTT 5 response topics this way, the broker holding them retained all along.
 *
 * Here a client remembers the last messages it was given by their (broker id, counter), and only a
 * message it was already given — the same publish matching two of its subscriptions — is left out;
 * aedes's own check is then told to let the message through.
 */
import type { Client } from 'aedes';

/** Out-of-order arrivals are a few in-flight publishes apart; a duplicate is at most as old. */
const REMEMBERED = 512;

type Deliver = (packet: { brokerId?: string | null; brokerCounter?: number }, cb: () => void) => void;
interface Delivering {
  deliverQoS: Deliver;
  deliver0: Deliver;
  duplicates: Record<string, number>;
}

/** Called for each client before it subscribes (aedes captures the deliver functions at subscribe). */
export function dedupeInAnyOrder(client: Client): void {
  const c = client as unknown as Delivering;
  const given = new Set<string>();
  const wrap = (deliver: Deliver): Deliver =>
    function (this: unknown, packet, cb) {
      const id = packet.brokerId;
      const counter = packet.brokerCounter;
      if (id && typeof counter === 'number' && counter > 0) {
        const key = `${id}:${counter}`;
        if (given.has(key)) {
          setImmediate(cb);
          return;
        }
        given.add(key);
        if (given.size > REMEMBERED) given.delete(given.values().next().value!);
        // aedes delivers only above its high-water mark: put it just below this message.
        c.duplicates[id] = counter - 1;
      }
      deliver.call(this, packet, cb);
    };
  c.deliverQoS = wrap(c.deliverQoS);
  c.deliver0 = wrap(c.deliver0);
}
