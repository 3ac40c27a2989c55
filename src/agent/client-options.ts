/**
 * How the session's one MQTT.js client is configured (docs/brokers.md): a persistent session under a
 * stable client id, our own reconnects (failover order and backoff), a retained last will, and per
 * attempt the protocol version and MQTT 5 properties that broker gets.
 */
import type { IClientOptions, MqttClient, Store } from 'mqtt';
import type { Attempt } from '../core/failover.js';
import { AGENT_MAX_PACKET_SIZE } from './packet-gate.js';

export interface ClientIdentity {
  clientId: string;
  keepaliveMs: number;
  will: { topic: string; payload: string };
}

/**
 * How long one attempt waits for its CONNACK. A broker busy with a connect storm (a fleet coming back
 * after a power cut, a Pi's broker under load) answers late; a fixed wait would abandon every attempt
 * just before its answer and never connect, so each attempt that ran out of time gives the next one
 * twice as long, up to maxMs (docs/brokers.md § Reconnects).
 */
export const CONNACK_WAIT = { initialMs: 10_000, maxMs: 80_000 };

/** The next attempt's CONNACK wait: back to the start after a CONNACK, doubled after a wait that ran out. */
export function nextConnackWait(
  currentMs: number,
  ended: 'connected' | 'connack_timeout' | 'other',
  wait: { initialMs: number; maxMs: number } = CONNACK_WAIT,
): number {
  if (ended === 'connected') return wait.initialMs;
  if (ended === 'connack_timeout') return Math.min(wait.maxMs, currentMs * 2);
  return currentMs;
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
    connectTimeout: CONNACK_WAIT.initialMs, // per attempt: see nextConnackWait
    resubscribe: false,
    manualConnect: true,
    // MQTT.js's default pre-builds 65,536 two-byte buffers at the first packet it writes: 7 MB of heap
    // and 45 ms at start on this machine, for a client that writes a few packets a minute
    // (docs/performance.md § MQTT.js's number cache, and transports loaded on use).
    writeCache: false,
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

/** How long an end waits at most for the broker's acknowledgements still in flight (agent and CLI alike). */
export const END_WAIT_MS = 2000;

/**
 * Ends the client: gracefully when connected, which makes MQTT.js wait for every acknowledgement in
 * flight before its DISCONNECT. A broker that never answers a SUBSCRIBE or a PUBLISH would hold that for
 * ever, and MQTT.js ignores a second end() once one has begun, so after END_WAIT_MS the socket is closed.
 * False when it had to be.
 */
export async function endWithin(client: MqttClient, force = !client.connected): Promise<boolean> {
  const ended = new Promise<void>((resolve) => client.end(force, {}, () => resolve()));
  try {
    await withTimeout(ended, END_WAIT_MS);
    return true;
  } catch {
    client.stream?.destroy();
    return false;
  }
}

/** `p`, or a rejection after `ms` (with `timedOut()`'s error: one that says what did not come, and what to do). */
export function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  timedOut: () => Error = () => new Error(`timed out after ${ms} ms`),
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(timedOut()), ms);
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
