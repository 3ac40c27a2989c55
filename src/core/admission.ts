/**
 * Whether a resolved request may go on, as far as signing is concerned: a signature where one is
 * required, made with the fleet key over the v2 canonical form, fresh (`ts` within the window), and
 * not used before within its window (docs/security.md § Signed requests). Pure: the replay set's
 * answers, the key and the clock come from the caller.
 */
import type { Config } from '../config/load.js';
import type { Request } from './request.js';
import type { Rejection } from './result.js';
import { verify } from './signing.js';

/** The request fields admission reads; `cancel` once requests carry one (it is bound when present). */
export type AdmissionRequest = Pick<
  Request,
  'id' | 'generatedId' | 'press' | 'params' | 'command' | 'timeoutMs' | 'ts' | 'ttl' | 'sig' | 'transaction'
> & { cancel?: string | undefined };

export interface AdmissionInput {
  request: AdmissionRequest;
  host: string;
  /** The action that would run (for a raw command, the one its pattern resolved to). */
  action: string;
  /** Whether the action runs through sudo. */
  privileged: boolean;
  key: string | undefined;
  policy: Pick<Config['security'], 'require_signature' | 'window'>;
  now: number;
  /** Where the answer goes: the MQTT 5 Response Topic the agent will use, and its Correlation Data. */
  replyTo: { responseTopic: string; correlationData?: Uint8Array | undefined } | undefined;
  /** This id was accepted signed within its window (the replay set). */
  used: boolean;
  /** The replay set holds as many ids as it may: a new signed id cannot be remembered. */
  full: boolean;
}

const DOCS = 'docs/security.md § Signed requests';

/** undefined when the request may go on; else the Rejection to answer with. */
export function admit(input: AdmissionInput): Rejection | undefined {
  const { request: req, policy } = input;
  const required =
    policy.require_signature === 'all' || (policy.require_signature === 'privileged' && input.privileged);
  if (req.sig === undefined) {
    if (!required) return undefined;
    return bad(
      `action "${input.action}" needs a signed request (security.require_signature: ${policy.require_signature}) — sign it with the fleet key (homelab-cmd send --key-file, or ${DOCS})`,
    );
  }
  if (input.key === undefined)
    return bad(
      'the request is signed, but this agent has no security.key_file to check it — configure the key, or send it unsigned',
    );
  if (req.generatedId) return bad('a signed request must carry its own "id" (the signature binds it)');
  if (req.ts === undefined)
    return bad('a signed request must carry "ts" (ms since epoch; the signature binds it)');
  const skew = Math.round((input.now - req.ts) / 1000);
  if (Math.abs(input.now - req.ts) > policy.window)
    return {
      code: 'expired',
      error: `the signed request's ts is ${Math.abs(skew)} s ${skew > 0 ? 'in the past' : 'in the future'}; signed requests are valid within ±${Math.round(policy.window / 1000)} s — sign it again now, or check the clocks`,
    };
  const verdict = verify(
    input.key,
    {
      host: input.host,
      action: input.action,
      id: req.id,
      ts: req.ts,
      // A press carries no params (request.ts refuses both): it is signed as sent, `{}` with press true,
      // not with the values the HA entities held when it arrived (docs/security.md § Signed requests).
      params: req.press ? {} : req.params,
      command: req.command,
      timeout: req.timeoutMs === undefined ? undefined : req.timeoutMs / 1000,
      ttl: req.ttl,
      transaction: req.transaction,
      press: req.press,
      cancel: req.cancel,
      responseTopic: input.replyTo?.responseTopic,
      correlationData: input.replyTo?.correlationData,
    },
    req.sig,
  );
  if (verdict === 'v1')
    return bad(
      `the request is signed with the retired homelab-cmd/v1 form, which binds too little — sign with v2 (${DOCS})`,
    );
  if (verdict === 'bad')
    return bad(
      `the signature does not match this request (host, the resolved action, id, ts, params or command, timeout, ttl, transaction, press, cancel, response topic and correlation data are all signed) — check the key and the homelab-cmd/v2 canonical string in ${DOCS}`,
    );
  if (input.used)
    return {
      code: 'replayed',
      error: `id ${req.id} was already used; a signed request is valid once — sign a new request with a new id`,
    };
  if (input.full)
    return {
      code: 'busy',
      error: `too many signed requests within the window (security.window): this agent remembers every signed id until its window has passed and holds no more now — try again in a few minutes with a new signature`,
    };
  return undefined;
}

function bad(error: string): Rejection {
  return { code: 'bad_signature', error };
}

/** What the agent holds when a checked job asks to run (docs/configuration.md § execution). */
export interface LoadInput {
  host: string;
  /** The config file, for the way out of `execution_disabled`. */
  source: string;
  enabled: boolean;
  /** The action has `stagger`: it waits for its group, not for a run slot. */
  staggered: boolean;
  /** Resumed after a restart: accepted before, so never refused for the load. */
  resumed: boolean;
  running: number;
  /** Waiting for a run slot (or for its stagger group), plus records still being synced. */
  waiting: number;
  concurrency: number;
  queue: number;
}

/** undefined when the job may be queued; else `execution_disabled` or `busy`. */
export function admitLoad(i: LoadInput): Rejection | undefined {
  if (!i.enabled)
    return {
      code: 'execution_disabled',
      error: `execution is disabled on ${i.host} — set execution.enabled: true in ${i.source} to let it run whitelisted actions`,
    };
  if (!i.resumed && (i.staggered || i.running >= i.concurrency) && i.waiting >= i.queue)
    return {
      code: 'busy',
      error: `${i.running} commands are running and ${i.waiting} waiting (execution.concurrency / execution.queue) — try again later with the same id`,
    };
  return undefined;
}
