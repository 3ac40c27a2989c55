/**
 * Where results go: retained on P/H/result/ID (MQTT 5 expiry one day), the
 * latest final one on P/H/result, the MQTT 5 response topic when the request
 * named one, and the oldest per-id results cleared beyond the last 100.
 */
import type { IPublishPacket } from 'mqtt';
import type { Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import type { OutputMessage } from './live-output.js';

/** How results leave the agent; the agent wires it to its MQTT session. */
export interface ResultSink {
  publish(
    topic: string,
    payload: string,
    options: { retain: boolean; qos?: 0 | 1; properties?: Record<string, unknown> },
  ): Promise<void>;
}

export interface ReplyTo {
  responseTopic: string;
  correlationData: Buffer | undefined;
}

// Per-id results retained beyond this many are cleared, oldest first (the contract).
const KEEP_RETAINED_RESULTS = 100;
// MQTT 5 message expiry of per-id results: one day.
const RESULT_EXPIRY_SEC = 86_400;

export class ResultPublisher {
  private readonly retainedIds: string[];

  constructor(
    private readonly topics: HostTopics,
    private readonly sink: ResultSink,
    private readonly log: Logger,
    retainedIds: string[],
    /** The broker acknowledged the final result of this id (it can leave the outbox). */
    private readonly delivered: (id: string) => void = () => undefined,
  ) {
    this.retainedIds = retainedIds.slice(-KEEP_RETAINED_RESULTS);
  }

  /** Live output lines: P/H/output/ID, not retained, QoS 0 (a lost batch is not worth a retransmission). */
  output(msg: OutputMessage): void {
    this.sink
      .publish(this.topics.output(msg.id), JSON.stringify(msg), { retain: false, qos: 0 })
      .catch(() => undefined);
  }

  /** `running` and `scheduled`: on the id's topic only. */
  progress(result: Result): void {
    this.send(this.topics.resultFor(result.id), result, true);
  }

  /** A final result. `fresh` is false when an already-published result is sent again for a repeated id. */
  final(result: Result, replyTo: ReplyTo | undefined, fresh = true): void {
    this.send(this.topics.resultFor(result.id), result, true, () => this.delivered(result.id));
    if (fresh) this.send(this.topics.result, result, false);
    if (replyTo) {
      const properties: Record<string, unknown> = {};
      if (replyTo.correlationData) properties.correlationData = replyTo.correlationData;
      this.sink
        .publish(replyTo.responseTopic, JSON.stringify(result), { retain: false, properties })
        .catch((err: unknown) =>
          this.log.warn({ err, id: result.id }, 'could not publish to the response topic'),
        );
    }
    if (fresh) this.trackRetained(result.id);
  }

  private trackRetained(id: string): void {
    const at = this.retainedIds.indexOf(id);
    if (at >= 0) this.retainedIds.splice(at, 1);
    this.retainedIds.push(id);
    while (this.retainedIds.length > KEEP_RETAINED_RESULTS) {
      const old = this.retainedIds.shift();
      // An empty retained payload deletes the retained message [MQTT-3.3.1-10].
      if (old !== undefined)
        this.sink.publish(this.topics.resultFor(old), '', { retain: true }).catch(() => undefined);
    }
  }

  private send(topic: string, result: Result, expires: boolean, acked?: () => void): void {
    const properties = expires ? { messageExpiryInterval: RESULT_EXPIRY_SEC } : undefined;
    this.sink
      .publish(topic, JSON.stringify(result), { retain: true, ...(properties ? { properties } : {}) })
      .then(acked, (err: unknown) =>
        this.log.warn({ err, topic }, 'could not publish a result; it stays in the outbox'),
      );
  }
}

export function replyToOf(packet: IPublishPacket): ReplyTo | undefined {
  const responseTopic = packet.properties?.responseTopic;
  if (!responseTopic || /[+#]/.test(responseTopic)) return undefined;
  return { responseTopic, correlationData: packet.properties?.correlationData };
}
