/**
 * What happened during one connection attempt (one TCP/TLS connection), and what it amounts to when it
 * ends: lost after a CONNACK, MQTT 5 refused, failed with a cause, or closed without a word — the
 * failover (core/failover.ts) decides what comes next from that outcome.
 */
import { refusesV5, type Outcome, type ProtocolVersion } from '../core/failover.js';
import { CONNACK_TIMEOUT, connectCause, type Cause } from './connect-cause.js';

export class ConnectAttempt {
  connected = false;
  private refusedV5 = false;
  private error: string | undefined;
  /** No CONNACK came within the attempt's wait (MQTT.js's "connack timeout"): the next attempt waits longer. */
  connackTimedOut = false;
  /** What the broker (or the network) said when the attempt failed before a CONNACK accepted it. */
  cause: Cause | undefined;

  /**
   * An MQTT.js error during the attempt. True when it is worth a log line now: after a CONNACK. Before
   * one, the attempt's end logs it once per cause (connection-log.ts).
   */
  failed(err: Error & { code?: number | string }, protocolVersion: ProtocolVersion): boolean {
    if (protocolVersion === 5 && typeof err.code === 'number' && refusesV5(err.code)) {
      this.refusedV5 = true;
      return false;
    }
    this.error = typeof err.code === 'string' ? `${err.code}: ${err.message}` : err.message;
    if (this.connected) return true;
    if (err.message === CONNACK_TIMEOUT) this.connackTimedOut = true;
    this.cause = connectCause(err.code, err.message);
    return false;
  }

  /** The stream itself failed (packet-gate.ts ends a connection that sends a packet too large). */
  streamFailed(message: string): void {
    this.error = message;
  }

  disconnected(reasonCode: number | undefined, reason: string | undefined): void {
    this.error = `the broker sent DISCONNECT (reason code ${reasonCode ?? 0}${reason ? `: ${reason}` : ''})`;
  }

  /** How the attempt ended, as the next attempt's CONNACK wait sees it (client-options.ts nextConnackWait). */
  get ending(): 'connected' | 'connack_timeout' | 'other' {
    if (this.connected) return 'connected';
    return this.connackTimedOut ? 'connack_timeout' : 'other';
  }

  outcome(): Outcome {
    if (this.connected)
      return {
        kind: 'lost',
        reason: this.error ?? 'the connection closed (the broker went away, or hung up)',
      };
    if (this.refusedV5) return { kind: 'refused_v5' };
    return this.error !== undefined
      ? { kind: 'failed', reason: this.error }
      : { kind: 'closed_without_connack' };
  }
}
