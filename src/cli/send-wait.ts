/**
 * Publishing one request and waiting for its final result: on its per-id result topic, or on MQTT 5 on
 * its own reply topic; only a result with its own id and host counts (docs/security.md § Answers that
 * cannot be faked).
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { outputMessageSchema, readFormat, resultReader, type OutputMessage } from '../core/formats.js';
import { isFinal, type Result } from '../core/result.js';
import { hostTopics } from '../core/topics.js';
import type { ReplyTo } from './request-spec.js';

/**
 * A final result this request may accept: its own `id` and `host` (anyone able to write the topic could
 * put another result there), and a known final status (docs/security.md § Answers that cannot be faked).
 */
export function ownFinalResult(payload: Buffer, id: string, host: string): Result | 'progress' | undefined {
  // Checked against the result schema (core/formats.ts), not cast: anyone may write this topic.
  const r = readFormat(resultReader, payload);
  if (r === undefined || r.id !== id || r.host !== host) return undefined;
  return isFinal(r.status) ? r : 'progress';
}

/**
 * Publishes the request and resolves with the final result on its id — or, on MQTT 5, on its own reply
 * topic `P/H/reply/<random>` with its correlation data, whichever comes first.
 */
export async function sendAndWait(
  client: MqttClient,
  prefix: string,
  host: string,
  request: Record<string, unknown>,
  waitMs: number,
  progress: (r: Result) => void = () => undefined,
  onOutput?: (m: OutputMessage) => void,
  /** Signs the request once its reply topic is known (the signature binds it). */
  signer?: (replyTo: ReplyTo | undefined) => void,
): Promise<Result> {
  const topics = hostTopics(prefix, host);
  const id = String(request.id);
  const resultTopic = topics.resultFor(id);
  const v5 = client.options.protocolVersion === 5;
  const replyTopic = `${topics.replyBase}${randomBytes(8).toString('hex')}`;
  const correlation = randomBytes(16);
  let hostStatus: string | undefined;
  /** The last `scheduled` or `running` result: the request was accepted, its end is still to come. */
  let pending: Result | undefined;
  const deadline = Date.now() + waitMs;
  const final = new Promise<Result>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (pending) return reject(notFinished(pending, host, request, waitMs, resultTopic));
      const hint =
        hostStatus === 'online'
          ? 'the agent is online but did not answer'
          : hostStatus === 'offline'
            ? `host ${host} is offline; the request expires after its ttl (${waitMs / 1000} s, = --wait), so it will not run when ${host} comes back — send it again then`
            : `host ${host} is unknown to this broker (no retained status); check the host id with homelab-cmd status`;
      reject(
        new Error(
          `no final result for id ${id} within ${waitMs / 1000} s — ${hint}. Check with: homelab-cmd status`,
        ),
      );
    }, waitMs).unref(); // a refused subscribe or publish ends the client: the wait must not hold the process
    client.on('message', (topic, payload, packet) => {
      if (topic === topics.status) hostStatus = payload.toString();
      if (onOutput && topic === topics.output(id)) {
        // Not ours to judge: a malformed line batch is skipped.
        const batch = readFormat(outputMessageSchema, payload);
        if (batch) onOutput(batch);
        return;
      }
      const onReply = v5 && topic === replyTopic;
      if ((topic !== resultTopic && !onReply) || payload.length === 0) return;
      // A reply is ours only with our correlation data (only agent H may write P/H/reply/#, but check).
      const corr = packet.properties?.correlationData;
      if (onReply && !(Buffer.isBuffer(corr) && corr.equals(correlation))) return;
      const r = ownFinalResult(payload, id, host);
      if (r === undefined || (r === 'progress' && onReply)) return;
      if (r === 'progress') {
        const p = readFormat(resultReader, payload);
        if (!p) return;
        progress(p);
        pending = p;
        // Scheduled beyond the wait: waiting on is pointless, and "did not answer" would be false.
        const runAt = p.status === 'scheduled' && p.run_at ? Date.parse(p.run_at) : NaN;
        if (runAt > deadline) {
          clearTimeout(timer);
          reject(notFinished(p, host, request, waitMs, resultTopic));
        }
        return;
      }
      clearTimeout(timer);
      resolve(r);
    });
  });
  if (onOutput) await client.subscribeAsync(topics.output(id), { qos: 0 });
  if (v5) await client.subscribeAsync(replyTopic, { qos: 1 });
  await client.subscribeAsync(resultTopic, { qos: 1 });
  await client.subscribeAsync(topics.status, { qos: 0 });
  // Stamped now, after connecting and subscribing: ts is when it leaves, so ttl counts from there.
  if (typeof request.ttl === 'number') request.ts = Date.now();
  signer?.(v5 ? { responseTopic: replyTopic, correlationData: correlation } : undefined);
  // MQTT 5 message expiry of the ttl's length: the broker itself drops it from an offline agent's
  // session once it could only be answered `expired` (whole seconds, at least 1).
  const expiry = typeof request.ttl === 'number' ? Math.max(1, Math.ceil(request.ttl)) : undefined;
  // A request without an action (a cancel: cli/cancel.ts) goes to P/H/cmd.
  await client.publishAsync(
    request.action === undefined ? topics.cmd : topics.cmdAction(String(request.action)),
    JSON.stringify(request),
    v5
      ? {
          qos: 1,
          properties: {
            responseTopic: replyTopic,
            correlationData: correlation,
            ...(expiry !== undefined ? { messageExpiryInterval: expiry } : {}),
          },
        }
      : { qos: 1 },
  );
  return final;
}

/** The request was accepted (`scheduled` or `running`) but has no final result within --wait: exit 3. */
export class NotFinished extends Error {
  constructor(
    message: string,
    readonly last: Result,
  ) {
    super(message);
    this.name = 'NotFinished';
  }
}

function notFinished(
  last: Result,
  host: string,
  request: Record<string, unknown>,
  waitMs: number,
  resultTopic: string,
): NotFinished {
  const id = String(request.id);
  const fetch = `homelab-cmd send ${host} ${String(request.action)} --id ${id} (an id never runs twice: it returns the stored result), or read the retained ${resultTopic}`;
  const what =
    last.status === 'scheduled'
      ? `request ${id} is scheduled: ${host} will run it at ${last.run_at ?? 'a time not given'} (its stagger group's turn), after --wait (${waitMs / 1000} s) ends`
      : `request ${id} ${last.status === 'running' ? 'is still running on' : `is ${last.status} on`} ${host} after --wait (${waitMs / 1000} s)${last.executed_at ? `; it started at ${last.executed_at}` : ''}`;
  return new NotFinished(
    `${what} — it was accepted and carries on; fetch its result later with: ${fetch}`,
    last,
  );
}
