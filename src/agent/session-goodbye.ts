/**
 * The session's orderly goodbye (docs/brokers.md): `offline` retained first, then DISCONNECT, which
 * suppresses the will. Its own module because the end of a session has rules of its own — bounded
 * waits, and no graceful end while disconnected — apart from keeping one alive.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import { withTimeout } from './client-options.js';

export async function sayGoodbye(
  client: MqttClient,
  finalStatus: { topic: string; payload: string } | undefined,
  log: Logger,
): Promise<void> {
  if (finalStatus && client.connected) {
    try {
      await withTimeout(
        client.publishAsync(finalStatus.topic, finalStatus.payload, { qos: 1, retain: true }),
        2000,
      );
    } catch (err) {
      log.warn({ err }, 'could not publish offline status before disconnecting; the last will covers it');
    }
  }
  // Disconnected, a graceful end would wait for PUBACKs that cannot come; they stay in the journal's outbox.
  const force = !client.connected;
  const ended = new Promise<void>((resolve) => client.end(force, {}, () => resolve()));
  try {
    // Connected, MQTT.js waits for every acknowledgement in flight before its DISCONNECT: a broker that
    // never answers a SUBSCRIBE or a PUBLISH would hold the stop for ever (failover-order.test.ts).
    await withTimeout(ended, GOODBYE_WAIT_MS);
  } catch {
    log.warn(
      { waitedMs: GOODBYE_WAIT_MS },
      'the broker did not acknowledge what was in flight; closing the connection (unacknowledged results stay in the outbox)',
    );
    // MQTT.js ignores a second end() once one has begun: only closing the socket ends it.
    client.stream?.destroy();
  }
}

/** How long an orderly stop waits for the broker's acknowledgements before it closes the connection. */
const GOODBYE_WAIT_MS = 2000;
