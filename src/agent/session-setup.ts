/**
 * What every connect does before the session counts as set up: subscribe, then run the agent's connect
 * listeners in order (docs/brokers.md). Its own module because this runs on each connect whatever
 * broker it is, apart from the reconnect machinery in session.ts, and a failure here must drop the
 * connection rather than leave a session that hears nothing.
 */
import type { MqttClient } from 'mqtt';
import type { ProtocolVersion } from '../core/failover.js';
import type { Logger } from '../log.js';
import { withTimeout } from './client-options.js';

export type ConnectListener = (info: {
  protocolVersion: ProtocolVersion;
  sessionPresent: boolean;
  reconnect: boolean;
  url: string;
  /** False once this connection closed or the session began to stop: a listener still awaiting work for it should stop there. */
  current: () => boolean;
}) => void | Promise<void>;

export interface SetUp {
  client: MqttClient;
  subscriptions: readonly string[];
  listeners: readonly ConnectListener[];
  /** False once this connection closed or the session began to stop: a set-up still running for it stops and drops nothing. */
  current: () => boolean;
  /** Every topic subscribed on this connection: requests are heard from now on. */
  subscribed: () => void;
  /**
   * How long a SUBACK may take: a broker that took the connection and never answers would otherwise leave
   * the agent connected, deaf and silent for ever. Past it the connection is dropped and tried again.
   */
  subackWaitMs: number;
  /** Read once subscribed: what the listeners are told. */
  info: () => Parameters<ConnectListener>[0];
  log: Logger;
}

/** True once set up; false when it failed (the connection was dropped to retry) or its connection closed. */
export async function setUpSession(s: SetUp): Promise<boolean> {
  try {
    // Subscribe at every connect, even with a session present: a persisted session may predate a
    // subscription this version needs. Retain Handling 1 sends retained messages only for a new
    // subscription, and Retain As Published keeps the retain flag on live deliveries, so a retained
    // command is recognised and refused (MQTT 5 § 3.8.3.1; 3.1.1 brokers clear the flag).
    // One topic per SUBSCRIBE: some brokers (aedes over Redis) hang on multi-topic subscribes.
    for (const topic of s.subscriptions) {
      await withTimeout(
        s.client.subscribeAsync(topic, { qos: 1, rap: true, rh: 1 }),
        s.subackWaitMs,
        () => new Error(`the broker did not answer the SUBSCRIBE to ${topic} within ${s.subackWaitMs} ms`),
      );
      if (!s.current()) return false;
    }
    s.subscribed();
    const connected = s.info();
    for (const l of [...s.listeners]) {
      await l(connected);
      // A publish awaited here can complete on the next connection (MQTT.js keeps QoS 1 messages across
      // reconnects): that connection runs its own set-up, so this one ends.
      if (!s.current()) return false;
    }
    return true;
  } catch (err) {
    // The connection closed under a subscribe (the next connect sets up again), or the stop's goodbye is
    // ending it: nothing to drop, and nothing failed.
    if (!s.current()) return false;
    s.log.error({ err }, 'setting up the session after connect failed; dropping the connection to retry');
    s.client.stream?.destroy();
    return false;
  }
}
