/** `homelab-cmd send H ACTION`: publish one request, wait for its final result, print it. */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { loadConfig } from '../config/load.js';
import { ACTION_NAME_RE, HOST_ID_RE, REQUEST_ID_RE } from '../core/names.js';
import { isFinal, type Result } from '../core/result.js';
import { outputMessageSchema, readFormat, resultReader, type OutputMessage } from '../core/formats.js';
import { sign, type SignedFields } from '../core/signing.js';
import { brokerUrls, redactUrl } from '../core/failover.js';
import { hostTopics } from '../core/topics.js';
import { UsageError } from '../errors.js';
import { connectFirst, refusal, type ClientOptions } from './client.js';
import { readUpRecord } from './up-record.js';
import { offlineLine, readPresence, unknownHostLine } from './send-preflight.js';
import { err, out, parse, secondsOption, type Verb } from './args.js';

export interface Target extends ClientOptions {
  prefix: string;
}

/**
 * `--url`/`--prefix` default to mqtt.url/mqtt.prefix of `--config`, else the broker of a running
 * `homelab-cmd up` of this user (it may have moved off 1883), else the contract's defaults.
 * `--url` may be repeated (like a list in mqtt.url): the brokers are tried in order.
 */
export function targetFrom(
  values: {
    url?: string | string[] | undefined;
    prefix?: string | undefined;
    config?: string | undefined;
  },
  env: NodeJS.ProcessEnv = process.env,
): Target {
  const config = values.config ? loadConfig(values.config) : undefined;
  const given = values.url === undefined ? [] : brokerUrls(values.url);
  const up = given.length === 0 && !config ? readUpRecord(env) : undefined;
  return {
    url: given.length > 0 ? given : (config?.mqtt.url ?? up?.url ?? 'mqtt://127.0.0.1:1883'),
    prefix: values.prefix ?? config?.mqtt.prefix ?? up?.prefix ?? 'homelab',
    username: config?.mqtt.username,
    password: config?.mqtt.password,
    caFile: config?.mqtt.ca_file,
    certFile: config?.mqtt.cert_file,
    keyFile: config?.mqtt.key_file,
    insecure: config?.mqtt.insecure,
  };
}

export const targetOptions = {
  url: { type: 'string', short: 'u', multiple: true },
  prefix: { type: 'string' },
  config: { type: 'string', short: 'c' },
} as const;

export const sendVerb: Verb = {
  name: 'send',
  usage: `Usage: homelab-cmd send HOST ACTION [--param k=v]... [--timeout S] [--wait S]
                        [--id ID] [--key-file K] [--follow] [--force] [--url U] [--prefix P] [--config F]

Publishes a request to P/HOST/cmd/ACTION and waits (default 60 s) for its final
result on P/HOST/result/ID, printing progress to stderr and the result as JSON
to stdout. Exit 0 when succeeded, 1 otherwise, 2 on usage or connection errors,
3 when the request was accepted but is not finished within --wait (scheduled
for later by a stagger group, or still running): it prints that result and how
to fetch the final one. It first reads HOST's retained status: an offline host
is said so on stderr (the request is still sent, and expires after --wait); a
host with no retained status at all is not sent to (exit 2, with the hosts the
broker knows) unless --force is given.
--url and --prefix default to mqtt.url and mqtt.prefix of --config, else the
broker of a running homelab-cmd up, else mqtt://127.0.0.1:1883 and homelab; --url may be repeated, and the brokers are
tried in order until one answers. --id makes a retry safe: an id never runs twice.
The request carries ts and ttl = --wait (and MQTT 5 message expiry as long): if
it has not reached the agent by then, it never runs (error_code expired).
--key-file signs the request (HMAC-SHA256, docs/security.md); it defaults to
security.key_file of --config. --follow prints the command's output live
(stdout lines to stdout, stderr lines to stderr), then the result.

       homelab-cmd send (--group G | --hosts H1,H2,...) ACTION [--serial | --parallel N]
                        [--check] [--json] [--run-id R] [--param k=v]... [--wait S] ...

The same action on many hosts: the members of group G (agents declare groups:
in their config and publish them) or the hosts named. Hosts not online are not
sent to. --parallel N sends to N at a time (default: all); --serial sends to the
next host only after the previous one succeeded and stops at the first that did
not. --check lists the hosts with online/offline and sends nothing. Each host's
request id is RUN-ID-HOST (hashed when longer than 64 characters): repeat with
--run-id R to collect the results of run R without running anything twice.
Prints one summary, failures first (--json: one JSON object). Exit 0 when every
host succeeded, 1 when any failed (or gave no answer within --wait), 4 when none
failed but some were offline, not started or scheduled for later, 2 on usage or
connection errors. docs/fleet.md.`,
  async run(argv) {
    const { values, positionals } = parse(
      this,
      argv,
      {
        ...targetOptions,
        param: { type: 'string', short: 'P', multiple: true },
        timeout: { type: 'string', short: 't' },
        wait: { type: 'string', short: 'w' },
        id: { type: 'string' },
        'key-file': { type: 'string', short: 'k' },
        follow: { type: 'boolean', short: 'f' },
        ...fleetOptions,
        force: { type: 'boolean' },
      },
      true,
    );
    if (values.help) return (out(this.usage), 0);
    if (values.group !== undefined || values.hosts !== undefined)
      return (await import('./send-fleet.js')).sendFleet(values, positionals, this.usage);
    for (const flag of FLEET_ONLY)
      if (values[flag] !== undefined)
        throw new UsageError(`--${flag} goes with --group or --hosts (docs/fleet.md)\n\n${this.usage}`);
    const [host, action, ...extra] = positionals;
    if (!host || !action || extra.length > 0)
      throw new UsageError(`give exactly HOST and ACTION\n\n${this.usage}`);
    if (!HOST_ID_RE.test(host))
      throw new UsageError(`HOST "${host}" is not a host id (${HOST_ID_RE.source})`);
    if (!ACTION_NAME_RE.test(action))
      throw new UsageError(`ACTION "${action}" is not an action name (${ACTION_NAME_RE.source})`);
    const id = values.id ?? randomUUID();
    if (!REQUEST_ID_RE.test(id)) throw new UsageError(`--id "${id}" must match ${REQUEST_ID_RE.source}`);
    const spec = requestSpec(action, values);
    const target = targetFrom(values);
    const request = buildRequest(id, spec);
    const key = signingKey(values);
    // Signed last, over the request as it will be sent — with the reply topic and correlation data
    // sendAndWait picks, which v2 binds (docs/security.md § Signed requests).
    const signer =
      key === undefined
        ? undefined
        : (replyTo: ReplyTo | undefined) => signRequest(key, host, request, replyTo);
    const waitS = spec.waitS;
    const { client, url } = await connectFirst(target);
    try {
      // Before publishing: is there such a host, and is it there (send-preflight.ts)?
      const presence = await readPresence(client, target.prefix, host);
      if (!presence.row && !values.force) {
        err(`homelab-cmd send: ${unknownHostLine(host, target.prefix, redactUrl(url), presence.known)}`);
        return 2;
      }
      if (presence.row?.status === 'offline')
        err(`homelab-cmd send: ${offlineLine(host, presence.row, waitS, Date.now())}`);
      const follow = values.follow
        ? (m: OutputMessage) =>
            (m.stream === 'stdout' ? out : err)(
              m.lines.join('\n') + (m.truncated ? '\n[output truncated]' : ''),
            )
        : undefined;
      const result = await sendAndWait(
        client,
        target.prefix,
        host,
        request,
        waitS * 1000,
        (r) => err(`${r.status}${r.run_at ? ` (runs at ${r.run_at})` : ''}…`),
        follow,
        signer,
      );
      out(JSON.stringify(result, null, 2));
      if (result.error_code === 'expired')
        err(
          `homelab-cmd send: not run — ${result.error ?? 'the request expired'} (its ttl is --wait, ${waitS} s: a longer --wait lets it wait longer for a host that is offline)`,
        );
      return result.status === 'succeeded' ? 0 : 1;
    } catch (e) {
      if (e instanceof NotFinished) {
        // Accepted, not failed: the result is still to come (exit 3, docs/mqtt-api.md § homelab-cmd send).
        out(JSON.stringify(e.last, null, 2));
        err(`homelab-cmd send: ${e.message}`);
        return 3;
      }
      const refused = refusal(e, url, `send to ${host} and read its results`);
      if (refused !== e) throw refused;
      err(`homelab-cmd send: ${(e as Error).message}`);
      return 1;
    } finally {
      await client.endAsync();
    }
  },
};

/** `send --group/--hosts` (src/cli/send-fleet.ts, docs/fleet.md). */
export const fleetOptions = {
  group: { type: 'string', short: 'g' },
  hosts: { type: 'string' },
  serial: { type: 'boolean' },
  parallel: { type: 'string' },
  check: { type: 'boolean' },
  json: { type: 'boolean' },
  'run-id': { type: 'string' },
} as const;
const FLEET_ONLY = ['serial', 'parallel', 'check', 'json', 'run-id'] as const;

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
type ReplyTo = { responseTopic: string; correlationData?: Uint8Array };

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
  await client.publishAsync(
    topics.cmdAction(String(request.action)),
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
