/**
 * The agent's one HTTP client, for probes (docs/mqtt-api.md § Probes) and health checks
 * (docs/configuration.md § Deployments): node:http(s), a fresh connection per request (no socket
 * lingers between checks, and a latency includes the connect), redirects not followed (a 301 is
 * an answer, and the check stays on the configured host), and at most `maxBody` bytes of a body
 * read — a huge or endless body costs nothing. It never throws: a failure is its answer. It lives
 * in exec/ beside the health check that needs it (exec/ never imports agent/); the probes
 * (agent/probe-checks.ts) import this same one.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpRequest {
  url: string;
  method?: string;
  /** Accept any TLS certificate (a probe's `insecure`). */
  insecure?: boolean;
  headers: Record<string, string>;
  /** Bytes of the body to read; 0: none (the answer is the status line and headers). */
  maxBody: number;
  /** Aborting it ends the request at once: the answer is `aborted`. */
  signal: AbortSignal;
}

export type HttpAnswer =
  /** `latencyMs`: until the status line and headers; `body`: what was read of it (≥ maxBody bytes when cut). */
  | { kind: 'answer'; status: number; latencyMs: number; body: Buffer }
  /** The OS or TLS error (`code`, e.g. ECONNREFUSED) and its message. */
  | { kind: 'error'; code: string | undefined; message: string }
  | { kind: 'aborted' };

export function httpRequest(r: HttpRequest): Promise<HttpAnswer> {
  const url = new URL(r.url);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (answer: HttpAnswer) => {
      if (settled) return;
      settled = true;
      r.signal.removeEventListener('abort', onAbort);
      req.destroy();
      resolve(answer);
    };
    const fail = (err: NodeJS.ErrnoException) =>
      finish({ kind: 'error', code: err.code, message: err.message });
    const request = url.protocol === 'https:' ? https.request : http.request;
    const req = request(
      url,
      {
        method: r.method ?? 'GET',
        agent: false,
        rejectUnauthorized: r.insecure !== true,
        headers: r.headers,
      },
      (res) => {
        const latencyMs = Math.round(performance.now() - t0);
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => finish({ kind: 'answer', status, latencyMs, body: Buffer.concat(chunks) });
        if (r.maxBody <= 0) return done();
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= r.maxBody) done();
        });
        res.once('end', done);
        res.on('error', fail);
      },
    );
    const onAbort = () => finish({ kind: 'aborted' });
    // `on`, not `once`: destroying the request after a result emits another error ("socket hang up"), and an
    // 'error' event with no listener would crash the agent.
    req.on('error', fail);
    if (r.signal.aborted) return onAbort();
    r.signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}
