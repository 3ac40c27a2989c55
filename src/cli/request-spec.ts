/**
 * What `send` asks of a host — params, timeout, the wait that becomes its ttl — and the signature over
 * it: one builder for single-host and fleet sends, so both send the same fields (docs/mqtt-api.md
 * § Request object, docs/security.md § Signed requests).
 */
import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import { sign, type SignedFields } from '../core/signing.js';
import { UsageError } from '../errors.js';
import { secondsOption } from './args.js';

/** What one request asks, the same for every host it goes to. */
export interface RequestSpec {
  action: string;
  params: Record<string, string>;
  timeout: number | undefined;
  /** How long to wait for the final result, seconds. */
  waitS: number;
}

/** --param, --timeout and --wait of the command line, checked. */
export function requestSpec(
  action: string,
  values: { param?: string[] | undefined; timeout?: string | undefined; wait?: string | undefined },
): RequestSpec {
  const params: Record<string, string> = {};
  for (const p of values.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param takes k=v, got "${p}"`);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }
  const timeout = secondsOption('timeout', values.timeout);
  const waitS = secondsOption('wait', values.wait) ?? (timeout !== undefined ? timeout + 10 : 60);
  return { action, params, timeout, waitS };
}

/**
 * The request object one host gets: the one builder of single-host and fleet sends, so both send the
 * same fields (docs/mqtt-api.md § Request object).
 */
export function buildRequest(id: string, spec: RequestSpec): Record<string, unknown> {
  // ttl = --wait: once send has given up, the request must not run either — say, when the host comes
  // back hours later (docs/mqtt-api.md § Late requests). ts is stamped as it is published.
  const request: Record<string, unknown> = { id, action: spec.action, params: spec.params, ttl: spec.waitS };
  if (spec.timeout !== undefined) request.timeout = spec.timeout;
  return request;
}

/** --key-file, else security.key_file of --config. */
export function signingKey(values: {
  'key-file'?: string | undefined;
  config?: string | undefined;
}): string | undefined {
  return readKey(values['key-file']) ?? (values.config ? loadConfig(values.config).signingKey : undefined);
}

/** Stamps `ts` and signs, last, over the request as it will be published to `host` (docs/security.md). */
export function signRequest(
  key: string,
  host: string,
  request: Record<string, unknown>,
  replyTo: ReplyTo | undefined,
): void {
  request.ts = Date.now();
  request.sig = sign(key, signedFields(host, request, replyTo));
}

/** Where the agent is asked to answer: bound by a v2 signature. */
export type ReplyTo = { responseTopic: string; correlationData?: Uint8Array };

/** What a v2 signature binds, read from the request object about to be published (docs/security.md). */
export function signedFields(
  host: string,
  request: Record<string, unknown>,
  replyTo?: ReplyTo,
): SignedFields {
  const opt = <T>(v: unknown, type: string): T | undefined => (typeof v === type ? (v as T) : undefined);
  return {
    host,
    action: String(request.action),
    id: String(request.id),
    ts: request.ts as number,
    params: request.params as Record<string, unknown> | undefined,
    // The agent keeps whole milliseconds of a timeout, and signs what it keeps.
    timeout: typeof request.timeout === 'number' ? Math.round(request.timeout * 1000) / 1000 : undefined,
    ttl: opt<number>(request.ttl, 'number'),
    transaction: opt<string>(request.transaction, 'string'),
    press: request.press === true ? true : undefined,
    responseTopic: replyTo?.responseTopic,
    correlationData: replyTo?.correlationData,
  };
}

function readKey(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new UsageError(`cannot read the key file ${file}: ${(e as Error).message} — check --key-file`);
  }
}
