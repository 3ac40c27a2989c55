/**
 * How the session's one MQTT.js client is configured (docs/brokers.md): a persistent session under a
 * stable client id, our own reconnects (failover order and backoff), a retained last will, and per
 * attempt the protocol version and MQTT 5 properties that broker gets.
 */
import type { IClientOptions, Store } from 'mqtt';
import type { Attempt } from '../core/failover.js';
import { AGENT_MAX_PACKET_SIZE } from './packet-gate.js';

export interface ClientIdentity {
  clientId: string;
  keepaliveMs: number;
  will: { topic: string; payload: string };
}

export function sessionClientOptions(
  o: ClientIdentity,
  stores: { incomingStore: Store; outgoingStore: Store },
): IClientOptions {
  return {
    clientId: o.clientId,
    protocolVersion: 5,
    clean: false,
    keepalive: Math.max(1, Math.round(o.keepaliveMs / 1000)),
    reconnectPeriod: 0, // we reconnect ourselves: failover order and backoff
    connectTimeout: 10_000,
    resubscribe: false,
    manualConnect: true,
    ...stores,
    will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: true },
  };
}

/** Sets what one attempt sends in its CONNECT: this broker's version, and MQTT 5's properties only where they exist. */
export function prepareAttempt(
  options: IClientOptions,
  next: Attempt,
  credentials: { username: string | undefined; password: string | undefined },
  sessionExpirySec: number,
): void {
  options.protocolVersion = next.protocolVersion;
  if (next.protocolVersion === 5)
    options.properties = {
      sessionExpiryInterval: sessionExpirySec,
      // Brokers never send more than this [MQTT-3.1.2-24]; 3.1.1 brokers are held to it by the gate.
      maximumPacketSize: AGENT_MAX_PACKET_SIZE,
      requestResponseInformation: true,
    };
  else delete options.properties;
  options.username = credentials.username;
  options.password = credentials.password;
}

/** `p`, or a rejection after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
