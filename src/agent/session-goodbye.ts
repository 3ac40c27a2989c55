/**
 * The session's orderly goodbye (docs/brokers.md): `offline` retained first, then DISCONNECT, which
 * suppresses the will. Its own module because the end of a session has rules of its own — bounded
 * waits, and no graceful end while disconnected — apart from keeping one alive.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import { END_WAIT_MS, endWithin, withTimeout } from './client-options.js';

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
  // Connected, it waits for those in flight, but not for ever (failover-order.test.ts).
  if (!(await endWithin(client)))
    log.warn(
      { waitedMs: END_WAIT_MS },
      'the broker did not acknowledge what was in flight; closing the connection (unacknowledged results stay in the outbox)',
    );
}
