/**
 * Many requests on one connection (docs/fleet.md): one message listener and a map from result topic to
 * the request waiting on it, so a thousand hosts cost a thousand map entries, not a thousand listeners.
 * A result counts only with its own id and host (ownFinalResult, docs/security.md § Answers that cannot
 * be faked).
 */
import type { MqttClient } from 'mqtt';
import type { Result } from '../core/result.js';
import { hostTopics } from '../core/topics.js';
import { ownFinalResult } from './send-wait.js';

export type Outcome =
  | { kind: 'final'; result: Result }
  /** The agent deferred it (a stagger group) past the wait: it will run at `runAt`. */
  | { kind: 'scheduled'; runAt: string | undefined }
  /** No final result within the wait; `last` is the last progress seen (running, scheduled…). */
  | { kind: 'no_answer'; last: string | undefined };

interface Waiting {
  id: string;
  host: string;
  deadline: number;
  last: Result | undefined;
  done: (o: Outcome) => void;
}

// SUBSCRIBE packets of this many topics: one packet each, not one per host (docs/fleet.md § Scale).
const SUBSCRIBE_CHUNK = 100;

export class FleetWaiter {
  private readonly waiting = new Map<string, Waiting>();
  /** Result topic → whose it is, for every host subscribed to. */
  private readonly known = new Map<string, { host: string; id: string }>();
  /**
   * Final results retained from an earlier attempt of the same run id: a retry gets them without
   * publishing anything (docs/fleet.md § Request ids).
   */
  private readonly stored = new Map<string, Result>();
  private readonly onMessage = (topic: string, payload: Buffer) => this.message(topic, payload);

  constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
    /** Told when a host's request moves on without ending (running, rebooting, scheduled). */
    private readonly onProgress?: (host: string, progress: Result) => void,
  ) {
    client.on('message', this.onMessage);
  }

  /** Subscribes to the result topic of every (host, id) before any request is sent. */
  async subscribe(pairs: readonly { host: string; id: string }[]): Promise<void> {
    const topics = pairs.map((p) => {
      const topic = hostTopics(this.prefix, p.host).resultFor(p.id);
      this.known.set(topic, { host: p.host, id: p.id });
      return topic;
    });
    const chunks: string[][] = [];
    for (let i = 0; i < topics.length; i += SUBSCRIBE_CHUNK)
      chunks.push(topics.slice(i, i + SUBSCRIBE_CHUNK));
    await Promise.all(chunks.map((c) => this.client.subscribeAsync(c, { qos: 1 })));
  }

  /** Publishes `request` to `host` and resolves with what became of it within `waitMs`. */
  send(host: string, request: Record<string, unknown>, waitMs: number): Promise<Outcome> {
    const topics = hostTopics(this.prefix, host);
    const id = String(request.id);
    const topic = topics.resultFor(id);
    const stored = this.stored.get(topic);
    if (stored) return Promise.resolve({ kind: 'final', result: stored });
    return new Promise<Outcome>((resolve, reject) => {
      const timer = setTimeout(() => finish({ kind: 'no_answer', last: w.last?.status }), waitMs);
      const finish = (o: Outcome) => {
        clearTimeout(timer);
        this.waiting.delete(topic);
        resolve(o);
      };
      const w: Waiting = { id, host, deadline: Date.now() + waitMs, last: undefined, done: finish };
      this.waiting.set(topic, w);
      // MQTT 5 message expiry as long as the ttl: the broker drops it from an offline agent's session.
      const ttl = typeof request.ttl === 'number' ? Math.max(1, Math.ceil(request.ttl)) : undefined;
      const v5 = this.client.options.protocolVersion === 5;
      this.client.publish(
        topics.cmdAction(String(request.action)),
        JSON.stringify(request),
        v5 && ttl !== undefined ? { qos: 1, properties: { messageExpiryInterval: ttl } } : { qos: 1 },
        (e) => {
          if (e) {
            clearTimeout(timer);
            this.waiting.delete(topic);
            reject(e);
          }
        },
      );
    });
  }

  stop(): void {
    this.client.removeListener('message', this.onMessage);
  }

  private message(topic: string, payload: Buffer): void {
    if (payload.length === 0) return;
    const w = this.waiting.get(topic);
    if (!w) {
      const k = this.known.get(topic);
      const r = k && ownFinalResult(payload, k.id, k.host);
      if (r && r !== 'progress') this.stored.set(topic, r);
      return;
    }
    const r = ownFinalResult(payload, w.id, w.host);
    if (r === undefined) return;
    if (r !== 'progress') return w.done({ kind: 'final', result: r });
    const progress = JSON.parse(payload.toString()) as Result;
    // Said once per change: a reboot's `rebooting` may last minutes (docs/fleet.md § Rolling updates and reboots).
    const back = progress.reboot?.boot_id_after !== undefined && w.last?.reboot?.boot_id_after === undefined;
    if (progress.status !== w.last?.status || back) this.onProgress?.(w.host, progress);
    w.last = progress;
    // A stagger group deferred it past our wait: nothing final can come before the deadline, so stop
    // waiting now and say when it runs (docs/fleet.md § Stagger groups).
    if (progress.status === 'scheduled') {
      const at = typeof progress.run_at === 'string' ? Date.parse(progress.run_at) : Number.NaN;
      if (Number.isFinite(at) && at > w.deadline) w.done({ kind: 'scheduled', runAt: progress.run_at });
    }
  }
}
