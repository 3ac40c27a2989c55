/** `homelab-cmd send H ACTION`: publish one request, wait for its final result, print it. */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { loadConfig } from '../config/load.js';
import { ACTION_NAME_RE, HOST_ID_RE, REQUEST_ID_RE } from '../core/names.js';
import { isFinal, type Result } from '../core/result.js';
import { outputMessageSchema, readFormat, resultReader, type OutputMessage } from '../core/formats.js';
import { sign, type SignedFields } from '../core/signing.js';
import { brokerUrls } from '../core/failover.js';
import { hostTopics } from '../core/topics.js';
import { UsageError } from '../errors.js';
import { connectFirst, refusal, type ClientOptions } from './client.js';
import { readUpRecord } from './up-record.js';
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
                        [--id ID] [--key-file K] [--follow] [--url U] [--prefix P] [--config F]

Publishes a request to P/HOST/cmd/ACTION and waits (default 60 s) for its final
result on P/HOST/result/ID, printing progress to stderr and the result as JSON
to stdout. Exit 0 when succeeded, 1 otherwise, 2 on usage or connection errors.
--url and --prefix default to mqtt.url and mqtt.prefix of --config, else the
broker of a running homelab-cmd up, else mqtt://127.0.0.1:1883 and homelab; --url may be repeated, and the brokers are
tried in order until one answers. --id makes a retry safe: an id never runs twice.
--key-file signs the request (HMAC-SHA256, docs/security.md); it defaults to
security.key_file of --config. --follow prints the command's output live
(stdout lines to stdout, stderr lines to stderr), then the result.`,
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
      },
      true,
    );
    if (values.help) return (out(this.usage), 0);
    const [host, action, ...extra] = positionals;
    if (!host || !action || extra.length > 0)
      throw new UsageError(`give exactly HOST and ACTION\n\n${this.usage}`);
    if (!HOST_ID_RE.test(host))
      throw new UsageError(`HOST "${host}" is not a host id (${HOST_ID_RE.source})`);
    if (!ACTION_NAME_RE.test(action))
      throw new UsageError(`ACTION "${action}" is not an action name (${ACTION_NAME_RE.source})`);
    const id = values.id ?? randomUUID();
    if (!REQUEST_ID_RE.test(id)) throw new UsageError(`--id "${id}" must match ${REQUEST_ID_RE.source}`);
    const params: Record<string, string> = {};
    for (const p of values.param ?? []) {
      const eq = p.indexOf('=');
      if (eq <= 0) throw new UsageError(`--param takes k=v, got "${p}"`);
      params[p.slice(0, eq)] = p.slice(eq + 1);
    }
    const timeout = secondsOption('timeout', values.timeout);
    const waitS = secondsOption('wait', values.wait) ?? (timeout !== undefined ? timeout + 10 : 60);
    const target = targetFrom(values);

    const request: Record<string, unknown> = { id, action, params };
    if (timeout !== undefined) request.timeout = timeout;
    const key =
      readKey(values['key-file']) ?? (values.config ? loadConfig(values.config).signingKey : undefined);
    // Signed last, over the request as it will be sent — with the reply topic and correlation data
    // sendAndWait picks, which v2 binds (docs/security.md § Signed requests).
    const signer =
      key === undefined
        ? undefined
        : (replyTo: ReplyTo | undefined) => {
            request.ts = Date.now();
            request.sig = sign(key, signedFields(host, request, replyTo));
          };
    const { client, url } = await connectFirst(target);
    try {
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
      return result.status === 'succeeded' ? 0 : 1;
    } catch (e) {
      const refused = refusal(e, url, `send to ${host} and read its results`);
      if (refused !== e) throw refused;
      err(`homelab-cmd send: ${(e as Error).message}`);
      return 1;
    } finally {
      await client.endAsync();
    }
  },
};

/** What a v2 signature binds, read from the request object about to be published (docs/security.md). */
/** Where the agent is asked to answer: bound by a v2 signature. */
type ReplyTo = { responseTopic: string; correlationData?: Uint8Array };

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
  const final = new Promise<Result>((resolve, reject) => {
    const timer = setTimeout(() => {
      const hint =
        hostStatus === 'online'
          ? 'the agent is online but did not answer'
          : `host ${host} is ${hostStatus ?? 'unknown to this broker (no retained status)'}; the request waits in its session until it comes back`;
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
        const shown = readFormat(resultReader, payload);
        if (shown) progress(shown);
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
  signer?.(v5 ? { responseTopic: replyTopic, correlationData: correlation } : undefined);
  await client.publishAsync(
    topics.cmdAction(String(request.action)),
    JSON.stringify(request),
    v5 ? { qos: 1, properties: { responseTopic: replyTopic, correlationData: correlation } } : { qos: 1 },
  );
  return final;
}
