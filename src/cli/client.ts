/**
 * The CLI's own MQTT client (send, status, the `up` probe): the first of the
 * given brokers that answers, MQTT 5 falling back to 3.1.1 per broker, with
 * connection errors made readable (naming every broker tried).
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ConnectionError } from '../errors.js';
import { attemptOutcome, brokerUrls, CLOSED_WITHOUT_CONNACK, Failover, redactUrl } from '../core/failover.js';
import { loginRefusal } from '../core/connack.js';
import { endWithin, withTimeout } from '../agent/client-options.js';

export interface ClientOptions {
  /** One broker, or several tried in order until one answers (`--url` repeated, or an mqtt.url list). */
  url: string | readonly string[];
  username?: string | undefined;
  password?: string | undefined;
  connectTimeoutMs?: number;
  /** TLS, as mqtt.ca_file / cert_file / key_file / insecure of the config. */
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  insecure?: boolean | undefined;
  /** A fixed client id: `discovery --clear` logs in as the (stopped) agent itself. Default: a random one. */
  clientId?: string | undefined;
}

export interface Connected {
  client: MqttClient;
  /** The broker that answered. */
  url: string;
  protocolVersion: 4 | 5;
}

export async function connectClient(opts: ClientOptions): Promise<MqttClient> {
  return (await connectFirst(opts)).client;
}

/**
 * The first broker of the list that answers: one round of the agent's own failover rule
 * (core/failover.ts) — list order, MQTT 5 first, then 3.1.1 for a broker that refused 5 or closed
 * the connection without a CONNACK (RabbitMQ before 3.13 does that to an MQTT 5 CONNECT).
 */
export async function connectFirst(opts: ClientOptions): Promise<Connected> {
  const urls = brokerUrls(opts.url);
  if (urls.length === 0)
    throw new ConnectionError('no broker URL given — pass --url, or set mqtt.url in --config');
  const failover = new Failover(urls);
  const failures: { url: string; reason: string; code: unknown }[] = [];
  for (let attempt = failover.first(); ;) {
    const { url, protocolVersion } = attempt;
    try {
      return { client: await connectOnce(url, opts, protocolVersion), url, protocolVersion };
    } catch (err) {
      const { mqttCode, reason } = err as AttemptError;
      attempt = failover.next(attemptOutcome(mqttCode, reason));
      // A retry of the same broker with 3.1.1 replaces this failure in the message.
      if (attempt.fallback === undefined) failures.push({ url, reason, code: mqttCode });
      // The failover waits only once a whole round failed: the CLI stops there instead.
      if (attempt.delayMs > 0) break;
    }
  }
  const tried = failures.map((f) => `${redactUrl(f.url)} (${f.reason}`).join('), nor to ');
  throw new ConnectionError(`cannot connect to ${tried}) — ${connectHint(failures.map((f) => f.code))}`);
}

/** What to check, from what the brokers answered: a login refused, a client refused, or no broker at all. */
function connectHint(codes: unknown[]): string {
  if (codes.some((c) => loginRefusal(c) === 'bad_login'))
    return 'the broker refused the login: check mqtt.username and mqtt.password (or password_file) in --config';
  if (codes.some((c) => loginRefusal(c) === 'not_authorized'))
    return 'the broker does not let this client connect: check mqtt.username and the password in --config (Mosquitto answers a wrong password this way too) and the user on the broker; without broker.users the embedded broker takes loopback clients only';
  return 'is the broker running? Check --url, or mqtt.url in --config (or start one with homelab-cmd up)';
}

/**
 * A SUBACK or PUBACK refusal (reason code 0x80 or above) as one line that names
 * the broker and what to check; any other error is returned as it is.
 */
export function refusal(e: unknown, url: string, what: string): unknown {
  // PUBACK: the error's code; SUBACK: MQTT.js keeps the reason codes in the packet it attaches.
  const { code, packet } = (e ?? {}) as { code?: unknown; packet?: { granted?: unknown } };
  const granted = Array.isArray(packet?.granted) ? (packet.granted as unknown[]) : [];
  const refused = [code, ...granted].some((c) => typeof c === 'number' && c >= 0x80);
  if (!refused) return e;
  return new ConnectionError(
    `the broker at ${redactUrl(url)} refused to let this login ${what} (${(e as Error).message}) — check the user in --config (mqtt.username) and its role on the broker: a controller may command and read every host, an agent only its own topics (broker.users, or the broker's ACL)`,
  );
}

type AttemptError = Error & { mqttCode?: unknown; reason: string };

/**
 * A broker that takes the connection but never answers a SUBSCRIBE or a PUBLISH held a command for ever
 * (`send --wait 3` still waiting after 40 s), and MQTT.js's graceful end waits for those answers too. So
 * every wait of the CLI on the broker is bounded on this client: a SUBACK or PUBACK within `ms`, or a
 * ConnectionError (exit 2) that names the broker; the end as the agent's stop (client-options.ts endWithin).
 */
function boundAnswers(client: MqttClient, url: string, ms: number): void {
  const silent = (what: string) =>
    new ConnectionError(
      `the broker at ${redactUrl(url)} accepted the connection but did not answer a ${what} within ${ms / 1000} s — it is stuck or overloaded: check it (its log, its load) and try again`,
    );
  const subscribe = client.subscribeAsync.bind(client);
  const publish = client.publishAsync.bind(client);
  client.subscribeAsync = ((...args: Parameters<typeof subscribe>) =>
    withTimeout(subscribe(...args), ms, () => silent('SUBSCRIBE'))) as typeof subscribe;
  client.publishAsync = ((...args: Parameters<typeof publish>) =>
    withTimeout(publish(...args), ms, () => silent('PUBLISH'))) as typeof publish;
  client.endAsync = ((force?: boolean) =>
    endWithin(client, force).then(() => undefined)) as typeof client.endAsync;
}

function connectOnce(url: string, opts: ClientOptions, protocolVersion: 4 | 5): Promise<MqttClient> {
  const options: IClientOptions = {
    protocolVersion,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    clientId: opts.clientId ?? `homelab-cmd-cli-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    // Not MQTT.js's table of 65,536 pre-built packet-id buffers: 45 ms and 7 MB for a one-shot command
    // (src/agent/client-options.ts).
    writeCache: false,
  };
  if (opts.username !== undefined) options.username = opts.username;
  if (opts.password !== undefined) options.password = opts.password;
  if (opts.caFile) options.ca = readFileSync(opts.caFile);
  if (opts.certFile) options.cert = readFileSync(opts.certFile);
  if (opts.keyFile) options.key = readFileSync(opts.keyFile);
  options.rejectUnauthorized = opts.insecure !== true;
  const client = mqtt.connect(url, options);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error & { code?: unknown }) => {
      if (settled) return;
      settled = true;
      client.end(true);
      const reason =
        typeof err.code === 'string' && err.code !== CLOSED_WITHOUT_CONNACK
          ? `${err.code}: ${err.message}`
          : err.message;
      reject(Object.assign(new Error(reason), { mqttCode: err.code, reason }));
    };
    // No error and no CONNACK: the broker hung up on the CONNECT itself (see connectFirst).
    const onClose = () =>
      fail(Object.assign(new Error('connection closed before CONNACK'), { code: CLOSED_WITHOUT_CONNACK }));
    client.once('connect', () => {
      settled = true;
      client.removeListener('error', fail);
      client.removeListener('close', onClose);
      (client.stream as { setNoDelay?: (b: boolean) => void } | undefined)?.setNoDelay?.(true);
      boundAnswers(client, url, opts.connectTimeoutMs ?? 5000);
      resolve(client);
    });
    client.once('error', fail);
    client.once('close', onClose);
  });
}
