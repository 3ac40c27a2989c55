/**
 * Which broker to try next, and how: the agent's failover order and its
 * per-broker choice of MQTT version, as data (docs/brokers.md § Failover).
 *
 * Order: brokers are tried in list order; a failed attempt moves on to the
 * next one at once; after a whole round fails, the next round starts again at
 * the first broker, after a backoff. When a working connection dies, every
 * other broker is tried first, in list order, and the one that died last.
 * The agent stays on a working broker even when an earlier one comes back
 * (no preemption): each move costs a session, a status flip and a full
 * republish, and buys nothing while the current broker works. A restart, or
 * the next loss, brings it back to the first broker that answers.
 *
 * MQTT version, per broker: 5 first. A CONNACK refusing 5 (v5 reason 0x84,
 * or a 3.1.1 broker's return code 1) is proof: that broker gets 3.1.1 from
 * then on. A broker that closes the connection without any CONNACK (RabbitMQ
 * before 3.13 does that to an MQTT 5 CONNECT) is only a hint: 3.1.1 is tried
 * at once, but only for that one connection — the next connection to it tries
 * 5 again, so a broker that was merely restarting is not stuck on 3.1.1.
 */

export type ProtocolVersion = 4 | 5;

/** How one connection attempt, or one connection, ended. */
export type Outcome =
  /** The CONNACK refused MQTT 5 (unsupported protocol version). */
  | { kind: 'refused_v5' }
  /** The transport opened, then closed without a CONNACK and without an error. */
  | { kind: 'closed_without_connack' }
  /** Anything else before a CONNACK: ECONNREFUSED, TLS, bad credentials, CONNACK timeout. */
  | { kind: 'failed'; reason: string }
  /** A working connection died. */
  | { kind: 'lost'; reason: string };

export interface Attempt {
  url: string;
  protocolVersion: ProtocolVersion;
  /** Wait this long before the attempt. */
  delayMs: number;
  /** Set when this attempt retries the same broker with 3.1.1, and why. */
  fallback?: 'refused' | 'closed_without_connack';
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

// CONNACK codes that refuse the protocol version: MQTT 5 reason 0x84, a 3.1.1 broker's return code 1.
const REFUSES_V5 = new Set<unknown>([0x84, 1]);

/** Does this CONNACK code (MQTT.js puts it in the error's `code`) refuse MQTT 5? */
export function refusesV5(code: unknown): boolean {
  return REFUSES_V5.has(code);
}

/** What a client that saw no CONNACK reports as its error `code` when the broker simply hung up. */
export const CLOSED_WITHOUT_CONNACK = 'closed_without_connack';

/** How a single connection attempt ended, from the error it failed with (the CLI's one-shot connects). */
export function attemptOutcome(code: unknown, reason: string): Outcome {
  if (refusesV5(code)) return { kind: 'refused_v5' };
  if (code === CLOSED_WITHOUT_CONNACK) return { kind: 'closed_without_connack' };
  return { kind: 'failed', reason };
}

/** `mqtt.url` is one URL or a list: always a list here, in the user's order. */
export function brokerUrls(url: string | readonly string[]): string[] {
  return typeof url === 'string' ? [url] : [...url];
}

/** A URL fit for logs: credentials in it are masked. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export class Failover {
  private readonly refusedV5 = new Set<string>();
  private queue: number[];
  private current: number;
  private protocol: ProtocolVersion;
  private fallback: Attempt['fallback'];
  /** Full rounds failed in a row since the last connection: drives the backoff. */
  private rounds = 0;

  constructor(
    private readonly urls: readonly string[],
    private readonly backoff: Backoff = { initialMs: 500, maxMs: 30_000 },
    /** In [0, 1): jitter, injected so tests are exact. */
    private readonly random: () => number = Math.random,
  ) {
    if (urls.length === 0) throw new Error('Failover needs at least one broker URL');
    this.queue = urls.map((_, i) => i).slice(1);
    this.current = 0;
    this.protocol = 5;
  }

  /** The first attempt: the first broker, at once. */
  first(): Attempt {
    return this.attempt(0);
  }

  /** The attempt in progress (or the connection up) is with this broker. */
  get url(): string {
    return this.urls[this.current] ?? '';
  }

  get protocolVersion(): ProtocolVersion {
    return this.protocol;
  }

  /** A CONNACK accepted the attempt: the round is over. */
  connected(): void {
    this.rounds = 0;
    this.fallback = undefined;
  }

  /** The attempt or connection ended: what to try next. */
  next(outcome: Outcome): Attempt {
    const url = this.url;
    if (outcome.kind === 'refused_v5' && this.protocol === 5) {
      this.refusedV5.add(url);
      this.protocol = 4;
      this.fallback = 'refused';
      return this.attempt(0);
    }
    if (outcome.kind === 'closed_without_connack' && this.protocol === 5) {
      this.protocol = 4;
      this.fallback = 'closed_without_connack';
      return this.attempt(0);
    }
    this.fallback = undefined;
    if (outcome.kind === 'lost') {
      // Everyone else first, in list order; the broker that just died goes last.
      this.queue = this.urls.map((_, i) => i).filter((i) => i !== this.current);
      this.queue.push(this.current);
      this.rounds = 0;
      return this.moveTo(this.queue.shift() ?? this.current, this.delay(0));
    }
    const next = this.queue.shift();
    if (next !== undefined) return this.moveTo(next, 0);
    // A whole round failed: back off, then start again from the first (the preferred) broker.
    this.queue = this.urls.map((_, i) => i).slice(1);
    return this.moveTo(0, this.delay(this.rounds++));
  }

  private moveTo(index: number, delayMs: number): Attempt {
    this.current = index;
    this.protocol = this.refusedV5.has(this.url) ? 4 : 5;
    return this.attempt(delayMs);
  }

  private attempt(delayMs: number): Attempt {
    const a: Attempt = { url: this.url, protocolVersion: this.protocol, delayMs };
    if (this.fallback) a.fallback = this.fallback;
    return a;
  }

  /** Capped exponential backoff with jitter in [base/2, base]: a fleet does not reconnect in lockstep. */
  private delay(step: number): number {
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** step);
    return Math.round(base / 2 + this.random() * (base / 2));
  }
}
