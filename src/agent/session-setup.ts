/**
 * What every connect does before the session counts as set up: subscribe, then run the agent's connect
 * listeners in order (docs/brokers.md). Its own module because this runs on each connect whatever
 * broker it is, apart from the reconnect machinery in session.ts, and a failure here must drop the
 * connection rather than leave a session that hears nothing.
 */
import type { MqttClient } from 'mqtt';
import type { ProtocolVersion } from '../core/failover.js';
import type { Logger } from '../log.js';

export type ConnectListener = (info: {
  protocolVersion: ProtocolVersion;
  sessionPresent: boolean;
  reconnect: boolean;
  url: string;
}) => void | Promise<void>;

/** True once set up; false when it failed and the connection was dropped to retry. */
export async function setUpSession(
  client: MqttClient,
  subscriptions: readonly string[],
  listeners: readonly ConnectListener[],
  /** Read once subscribed: what the listeners are told. */
  info: () => Parameters<ConnectListener>[0],
  log: Logger,
): Promise<boolean> {
  try {
    // Subscribe at every connect, even with a session present: a persisted session may predate a
    // subscription this version needs. Retain Handling 1 sends retained messages only for a new
    // subscription, and Retain As Published keeps the retain flag on live deliveries, so a retained
    // command is recognised and refused (MQTT 5 § 3.8.3.1; 3.1.1 brokers clear the flag).
    // One topic per SUBSCRIBE: some brokers (aedes over Redis) hang on multi-topic subscribes.
    for (const topic of subscriptions) await client.subscribeAsync(topic, { qos: 1, rap: true, rh: 1 });
    const connected = info();
    for (const l of [...listeners]) await l(connected);
    return true;
  } catch (err) {
    log.error({ err }, 'setting up the session after connect failed; dropping the connection to retry');
    client.stream?.destroy();
    return false;
  }
}
