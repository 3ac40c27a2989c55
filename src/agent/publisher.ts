/**
 * How every part of the agent publishes (results, discovery, params, probes, the fleet): one
 * interface, wired by agent.ts to its MQTT session, so each part can be tested with a recorder
 * and none of them holds the MQTT client.
 */
export interface PublishOptions {
  retain: boolean;
  /** Default 1 (docs/mqtt-api.md § Topics); live output uses 0. */
  qos?: 0 | 1;
  /** MQTT 5 properties (message expiry, correlation data); dropped on 3.1.1 by the session. */
  properties?: Record<string, unknown>;
}

export interface Publisher {
  publish(topic: string, payload: string, options: PublishOptions): Promise<void>;
}
