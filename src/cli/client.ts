/**
 * The CLI's own MQTT client (send, status, the `up` probe): MQTT 5, falling
 * back to 3.1.1 when a broker refuses 5, with connection errors made readable.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ConnectionError } from '../errors.js';
import { redactUrl } from '../agent/session.js';

export interface ClientOptions {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  connectTimeoutMs?: number;
  /** TLS, as mqtt.ca_file / cert_file / key_file / insecure of the config. */
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  insecure?: boolean | undefined;
}

export async function connectClient(opts: ClientOptions): Promise<MqttClient> {
  try {
    return await connectOnce(opts, 5);
  } catch (err) {
    const code = (err as { mqttCode?: unknown }).mqttCode;
    // The broker refused MQTT 5 (v5 reason 0x84, or a 3.1.1 broker's return code 1).
    if (code === 0x84 || code === 1) return connectOnce(opts, 4);
    throw err;
  }
}

function connectOnce(opts: ClientOptions, protocolVersion: 4 | 5): Promise<MqttClient> {
  const options: IClientOptions = {
    protocolVersion,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    clientId: `homelab-cmd-cli-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
  };
  if (opts.username !== undefined) options.username = opts.username;
  if (opts.password !== undefined) options.password = opts.password;
  if (opts.caFile) options.ca = readFileSync(opts.caFile);
  if (opts.certFile) options.cert = readFileSync(opts.certFile);
  if (opts.keyFile) options.key = readFileSync(opts.keyFile);
  options.rejectUnauthorized = opts.insecure !== true;
  const client = mqtt.connect(opts.url, options);
  return new Promise((resolve, reject) => {
    const fail = (err: Error & { code?: unknown }) => {
      client.end(true);
      const reason = typeof err.code === 'string' ? `${err.code}: ${err.message}` : err.message;
      const e = new ConnectionError(`cannot connect to ${redactUrl(opts.url)} (${reason}) — is the broker running? Check --url, or mqtt.url and credentials in --config`);
      reject(Object.assign(e, { mqttCode: err.code }));
    };
    const onClose = () => fail(new Error('connection closed before CONNACK'));
    client.once('connect', () => {
      client.removeListener('error', fail);
      client.removeListener('close', onClose);
      (client.stream as { setNoDelay?: (b: boolean) => void } | undefined)?.setNoDelay?.(true);
      resolve(client);
    });
    client.once('error', fail);
    client.once('close', onClose);
  });
}
