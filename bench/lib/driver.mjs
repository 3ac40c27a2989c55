/**
 * The measuring client: publishes requests and times each one until its final
 * result arrives. One MQTT 5 connection with TCP_NODELAY on, so the client
 * itself never adds a Nagle stall to what is measured.
 */
import { performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import process from 'node:process';
import mqtt from 'mqtt';

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted']);

/** Where one side listens and answers: the agent under `homelab/`, the naive bridge under `naive/`. */
export function side(name, prefix, host) {
  return {
    name,
    host,
    cmdTopic: (action, h = host) => `${prefix}/${h}/cmd/${action}`,
    resultTopic: (id, h = host) => `${prefix}/${h}/result/${id}`,
    // result/+ and not result/#: `#` would also match P/H/result (the agent's latest-result copy).
    resultFilter: (h = host) => `${prefix}/${h}/result/+`,
    statusTopic: (h = host) => `${prefix}/${h}/status`,
  };
}

export class Driver {
  constructor(client) {
    this.client = client;
    this.pending = new Map();
    this.seq = 0;
    this.watchers = [];
    client.on('message', (topic, payload) => {
      const p = this.pending.get(topic);
      if (p) {
        if (payload.length === 0) return;
        let status;
        try {
          status = JSON.parse(payload.toString()).status;
        } catch {
          return;
        }
        if (!FINAL.has(status)) return;
        const t = performance.now();
        this.pending.delete(topic);
        clearTimeout(p.timer);
        p.resolve({ ms: t - p.t0, status, at: t });
        return;
      }
      for (const w of this.watchers) w(topic, payload);
    });
  }

  static async connect(url) {
    const client = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId: `bench-driver-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      keepalive: 60,
    });
    client.stream.setNoDelay(true);
    return new Driver(client);
  }

  async subscribe(...filters) {
    for (const f of filters) await this.client.subscribeAsync(f, { qos: 1 });
  }

  /** Resolves on the first message on `topic` whose text pred accepts (live or retained). */
  waitFor(topic, pred, ms = 30_000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting on ${topic}`)), ms);
      const w = (tp, payload) => {
        if (tp !== topic || !pred(payload.toString())) return;
        clearTimeout(t);
        this.watchers.splice(this.watchers.indexOf(w), 1);
        resolve(performance.now());
      };
      this.watchers.push(w);
    });
  }

  /** Publishes one request and resolves with its latency (ms from just before the publish). */
  request(s, action, { qos = 1, host = s.host, tag = 'r', timeoutMs = 15_000 } = {}) {
    // Request ids allow [A-Za-z0-9._:-] only (CONTRACT.md); scenario names have spaces.
    const id = `${tag.replace(/[^A-Za-z0-9._:-]/g, '_')}-${++this.seq}`;
    const topic = s.resultTopic(id, host);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(topic);
        reject(new Error(`no final result on ${topic} within ${timeoutMs} ms`));
      }, timeoutMs);
      const t0 = performance.now();
      this.pending.set(topic, { t0, resolve, timer });
      this.client.publish(s.cmdTopic(action, host), JSON.stringify({ id }), { qos });
    });
  }

  /**
   * `n` requests by `concurrency` workers. Closed loop (each worker sends its next request when
   * its last result is in) unless pauseMs is set: then bursts of `concurrency` with a pause between
   * them, the way button presses arrive.
   */
  async run(s, action, { n, concurrency, qos = 1, pauseMs = 0, tag }) {
    const samples = [];
    let errors = 0;
    const one = async () => {
      try {
        const r = await this.request(s, action, { qos, tag });
        samples.push(r.ms);
        if (r.status !== 'succeeded') errors++;
      } catch {
        errors++;
      }
    };
    const t0 = performance.now();
    if (pauseMs > 0) {
      for (let sent = 0; sent < n; sent += concurrency) {
        await Promise.all(Array.from({ length: Math.min(concurrency, n - sent) }, one));
        await sleep(pauseMs);
      }
      return {
        samples,
        errors,
        seconds: (performance.now() - t0) / 1000 - Math.ceil(n / concurrency) * (pauseMs / 1000),
      };
    }
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        await one();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { samples, errors, seconds: (performance.now() - t0) / 1000 };
  }

  async end() {
    await this.client.endAsync(true);
  }
}
