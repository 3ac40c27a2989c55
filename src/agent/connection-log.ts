/**
 * What the agent says about its connection (docs/brokers.md § Log lines): every disconnect and every
 * move to another broker with its reason — silent loss of control is what users of other agents
 * complained about — but each distinct login or connect failure once per broker and cause, and its
 * end once, so a wrong password is one line, not two per retry forever.
 */
import { redactUrl, type Attempt, type Outcome, type ProtocolVersion } from '../core/failover.js';
import type { Logger } from '../log.js';
import { connectCause, type Cause } from './connect-cause.js';

export class ConnectionLog {
  private lastUrl: string | undefined;
  /** Why the agent left the broker it was last connected to (logged with the switch). */
  private leftBecause: string | undefined;
  /** Failed attempts since the last connection, and the broker|cause keys already logged. */
  private failures: { attempts: number; since: number; logged: Set<string> } | undefined;

  constructor(private readonly log: Logger) {}

  connected(
    url: string,
    protocolVersion: ProtocolVersion,
    sessionPresent: boolean,
    reconnect: boolean,
  ): void {
    const log = this.log;
    if (this.lastUrl !== undefined && this.lastUrl !== url) {
      log.warn(
        { from: redactUrl(this.lastUrl), to: redactUrl(url), reason: this.leftBecause, protocolVersion },
        'switched to another broker',
      );
    }
    this.lastUrl = url;
    if (this.failures) {
      const { attempts, since, logged } = this.failures;
      this.failures = undefined;
      log.info(
        {
          url: redactUrl(url),
          failedAttempts: attempts,
          since: new Date(since).toISOString(),
          causes: [...logged].map((k) => k.slice(k.lastIndexOf('|') + 1)),
        },
        'the broker accepts the agent again; the connection problem is over',
      );
    }
    log.info(
      { url: redactUrl(url), protocolVersion, sessionPresent },
      reconnect ? 'reconnected to broker' : 'connected to broker',
    );
  }

  /** One attempt on `url` ended with `outcome`; `next` is what the failover chose (core/failover.ts). */
  attemptEnded(url: string, outcome: Outcome, next: Attempt, cause: Cause | undefined): void {
    const log = this.log;
    const at = redactUrl(url);
    const where = { url: at, next: redactUrl(next.url), retryInMs: next.delayMs };
    if (next.fallback === 'refused') {
      log.warn(
        { url: at },
        'the broker refused MQTT 5; falling back to MQTT 3.1.1 (no response topics, no message expiry)',
      );
    } else if (next.fallback === 'closed_without_connack') {
      log.warn(
        { url: at },
        'the broker closed the connection without answering the MQTT 5 CONNECT (RabbitMQ before 3.13 does this); trying MQTT 3.1.1 (no response topics, no message expiry)',
      );
    } else if (outcome.kind === 'lost') {
      this.leftBecause = outcome.reason;
      log.warn({ ...where, reason: outcome.reason }, 'connection to broker lost; reconnecting');
    } else {
      const reason =
        outcome.kind === 'failed' ? outcome.reason : 'the broker closed the connection without a CONNACK';
      const why = cause ?? connectCause(undefined, reason);
      const failures = (this.failures ??= { attempts: 0, since: Date.now(), logged: new Set() });
      failures.attempts++;
      // Once per broker and cause: the retries that meet it again say nothing new (backoff: core/failover.ts).
      const key = `${at}|${why.kind}`;
      const fields = { ...where, cause: why.kind, check: why.check, reason };
      if (failures.logged.has(key)) log.debug({ ...fields, attempts: failures.attempts }, why.msg);
      else {
        failures.logged.add(key);
        log.warn(fields, why.msg);
      }
    }
  }
}
