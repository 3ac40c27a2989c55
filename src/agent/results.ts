/**
 * Where results go: retained on P/H/result/ID (MQTT 5 expiry one day), the
 * latest final one on P/H/result, the MQTT 5 response topic when the request
 * named one under P/H/reply/, and the oldest per-id results cleared beyond the last 100.
 */
import type { IPublishPacket } from 'mqtt';
import { checkReplyTo, type ReplyTo } from '../core/reply.js';
import type { Result } from '../core/result.js';
import type { HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import type { Publisher } from './publisher.js';
import type { OutputMessage } from './live-output.js';
import type { RetainedResults } from './retained-results.js';

export type { ReplyTo } from '../core/reply.js';

// MQTT 5 message expiry of per-id results: one day.
const RESULT_EXPIRY_SEC = 86_400;
// Requests repeating an id that is still running wait for its final result on their reply topics: bounded.
const MAX_WAITING_IDS = 256;
const MAX_WAITING_PER_ID = 8;

export class ResultPublisher {
  /** A refused response topic is a warning once, then debug: a flood of them must not flood the log. */
  private warnedReply = false;
  /** Reply targets of requests that repeated a running id: answered with that id's final result. */
  private readonly waiting = new Map<string, ReplyTo[]>();

  constructor(
    private readonly topics: HostTopics,
    private readonly sink: Publisher,
    private readonly log: Logger,
    /** Which per-id results are retained, oldest first; the oldest beyond the last 100 are cleared. */
    private readonly retained: RetainedResults,
    /** The broker acknowledged the final result of this id (it can leave the outbox). */
    private readonly delivered: (id: string) => void = () => undefined,
    /** Whether the journal keeps this id's final in its outbox (rejections, but `shutting_down`, are not kept). */
    private readonly kept: (id: string) => boolean = () => false,
  ) {}

  /** Live output lines: P/H/output/ID, not retained, QoS 0 (a lost batch is not worth a retransmission). */
  output(msg: OutputMessage): void {
    this.sink
      .publish(this.topics.output(msg.id), JSON.stringify(msg), { retain: false, qos: 0 })
      .catch(() => undefined);
  }

  /** `running` and `scheduled`: on the id's topic only. */
  progress(result: Result): void {
    this.send(this.topics.resultFor(result.id), result, true);
    this.trackRetained(result.id);
  }

  /** `rebooting`: like progress, but settles once the broker has it (or the publish failed), never rejects. */
  progressAcked(result: Result): Promise<void> {
    this.trackRetained(result.id);
    return this.sink
      .publish(this.topics.resultFor(result.id), JSON.stringify(result), {
        retain: true,
        properties: { messageExpiryInterval: RESULT_EXPIRY_SEC },
      })
      .catch((err: unknown) => this.log.warn({ err, id: result.id }, 'could not publish a result'));
  }

  /** A final result. `fresh` is false when an already-published result is sent again for a repeated id. */
  final(result: Result, replyTo: ReplyTo | undefined, fresh = true): void {
    this.send(this.topics.resultFor(result.id), result, true, () => this.delivered(result.id));
    if (fresh) this.send(this.topics.result, result, false, undefined, result.id);
    this.reply(result, replyTo);
    for (const also of this.waiting.get(result.id) ?? []) this.reply(result, also);
    this.waiting.delete(result.id);
    // A repeat republishes too (its topic may have been cleared meanwhile): it counts as the newest.
    this.trackRetained(result.id);
  }

  /**
   * A final result that must not land on its id's topic: a signed replay of a known id (docs/security.md
   * § Answers that cannot be faked). The id's retained result stays as it is; the rejection goes only
   * where nothing is replaced — the latest-result topic and the requester's reply topic.
   */
  aside(result: Result, replyTo: ReplyTo | undefined): void {
    this.send(this.topics.result, result, false, undefined, result.id);
    this.reply(result, replyTo);
  }

  /** A request repeated an id that is not final yet: its reply topic gets that id's final result too. */
  replyLater(id: string, replyTo: ReplyTo | undefined): void {
    if (!replyTo) return;
    const list = this.waiting.get(id) ?? [];
    if (list.length >= MAX_WAITING_PER_ID || (list.length === 0 && this.waiting.size >= MAX_WAITING_IDS)) {
      this.log.debug({ id }, 'too many requests wait for this result; this one gets no MQTT 5 reply');
      return;
    }
    list.push(replyTo);
    this.waiting.set(id, list);
  }

  /** The request's reply target, when it named an acceptable one; any other is logged and not answered. */
  replyToOf(packet: IPublishPacket): ReplyTo | undefined {
    const checked = checkReplyTo(
      packet.properties?.responseTopic,
      packet.properties?.correlationData,
      this.topics.replyBase,
    );
    if (checked.ok) return checked.replyTo;
    const fields = { topic: packet.topic, reason: checked.reason };
    const message = `no MQTT 5 reply: ${checked.reason} — ask for replies under ${this.topics.replyBase}<your client>; the result is on ${this.topics.result}/<id> either way`;
    if (this.warnedReply) this.log.debug(fields, message);
    else this.log.warn(fields, `${message} (further ones are logged at debug)`);
    this.warnedReply = true;
    return undefined;
  }

  private reply(result: Result, replyTo: ReplyTo | undefined): void {
    if (!replyTo) return;
    const properties: Record<string, unknown> = {};
    if (replyTo.correlationData) properties.correlationData = replyTo.correlationData;
    this.sink
      .publish(replyTo.responseTopic, JSON.stringify(result), { retain: false, properties })
      .catch((err: unknown) =>
        this.log.warn({ err, id: result.id }, 'could not publish to the response topic'),
      );
  }

  private trackRetained(id: string): void {
    // An empty retained payload deletes the retained message [MQTT-3.3.1-10].
    for (const old of this.retained.published(id))
      this.sink.publish(this.topics.resultFor(old), '', { retain: true }).catch(() => undefined);
  }

  private send(topic: string, result: Result, expires: boolean, acked?: () => void, id = result.id): void {
    const properties = expires ? { messageExpiryInterval: RESULT_EXPIRY_SEC } : undefined;
    this.sink
      .publish(topic, JSON.stringify(result), { retain: true, ...(properties ? { properties } : {}) })
      .then(acked, (err: unknown) =>
        // Only what the journal holds is published again at the next start (docs/operations.md § The state directory).
        this.kept(id)
          ? this.log.warn({ err, topic, id }, 'could not publish a result; it stays in the outbox')
          : this.log.warn(
              { err, topic, id, status: result.status },
              'could not publish a result; it is not kept (nothing ran: the request may simply be sent again)',
            ),
      );
  }
}
