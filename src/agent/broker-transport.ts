/**
 * The transport for one broker URL, built by MQTT.js itself (schemes, TLS, WebSocket paths, credentials
 * in the URL) through a client that never connects; the session's one client borrows it per attempt
 * (docs/brokers.md § Failover). Built when the agent starts, so a bad URL or an unreadable TLS file
 * fails the start, not a reconnect at 3 am.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type StreamBuilder } from 'mqtt';

export interface BrokerTransport {
  build: StreamBuilder;
  username: string | undefined;
  password: string | undefined;
}

export interface TlsFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  insecure: boolean;
}

export function brokerTransport(url: string, tlsFiles: TlsFiles): BrokerTransport {
  const tls: IClientOptions = { manualConnect: true, rejectUnauthorized: !tlsFiles.insecure };
  if (tlsFiles.caFile) tls.ca = readFileSync(tlsFiles.caFile);
  if (tlsFiles.certFile) tls.cert = readFileSync(tlsFiles.certFile);
  if (tlsFiles.keyFile) tls.key = readFileSync(tlsFiles.keyFile);
  const parser = mqtt.connect(url, tls);
  const build = (parser as unknown as { streamBuilder?: StreamBuilder }).streamBuilder;
  if (typeof build !== 'function')
    throw new Error(
      'this version of MQTT.js has no streamBuilder on its client — install the mqtt 5.x that package.json names (npm ci)',
    );
  return {
    build,
    username: parser.options.username,
    password: parser.options.password === undefined ? undefined : String(parser.options.password),
  };
}
