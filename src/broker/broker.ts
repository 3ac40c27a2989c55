/**
 * The embedded broker: aedes 2 (MQTT 5 and 3.1.1) behind one small interface.
 * With users: username/password and the contract's role ACL.
 * Without users: anonymous clients, from loopback only.
 * With a cluster: its messages and state in a Redis other brokers share (cluster.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { ConnectionError, PortInUseError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ClusterBackend, ClusterSpec } from './cluster.js';
import { mayPublish, maySubscribe, type AclContext, type Role } from './acl.js';
import { ConnackFirst } from './connack-first.js';

export interface BrokerUserSpec {
  username: string;
  password: string;
  role: 'agent' | 'controller';
  host?: string | undefined;
}

export interface BrokerOptions {
  host: string;
  port: number;
  users: BrokerUserSpec[];
  prefix: string;
  discoveryPrefix: string;
  log: Logger;
  /** broker.cluster: share subscriptions, retained messages, sessions and wills with other brokers over Redis. */
  cluster?: ClusterSpec | undefined;
}

export interface RunningBroker {
  port: number;
  host: string;
  close(): Promise<void>;
}

// [MQTT-3.2.2] CONNACK return codes aedes understands.
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const log = opts.log;
  const ctx: AclContext = { prefix: opts.prefix, discoveryPrefix: opts.discoveryPrefix };
  const users = new Map(opts.users.map((u) => [u.username, { digest: sha256(u.password), role: roleOf(u) }]));
  const roles = new WeakMap<Client, Role>();
  const secured = users.size > 0;
  // Imported only here: a broker without a cluster (and every agent) never loads Redis code.
  const cluster: ClusterBackend | undefined =
    opts.cluster && (await (await import('./cluster.js')).connectCluster(opts.cluster, log));
  // No message to a resuming session before its CONNACK (connack-first.ts).
  const connackFirst = new ConnackFirst();

  const aedes = await Aedes.createBroker({
    ...(cluster && {
      mq: cluster.mq,
      persistence: cluster.persistence,
      heartbeatInterval: cluster.heartbeatInterval,
    }),
    preConnect(client, _packet, done) {
      connackFirst.hold(client);
      // No users configured: the broker is open, so only this machine may use it.
      if (!secured && !isLoopback(client.conn as net.Socket)) {
        log.warn(
          { remote: (client.conn as net.Socket).remoteAddress },
          'refused a non-loopback client: no broker.users are configured',
        );
        done(authError('anonymous access is limited to loopback', NOT_AUTHORIZED), false);
        return;
      }
      done(null, true);
    },
    authenticate(client, username, password, done) {
      if (!secured) return done(null, true);
      const user = username === undefined ? undefined : users.get(username);
      const ok =
        user !== undefined && password !== undefined && timingSafeEqual(sha256(password), user.digest);
      if (!ok || !user) {
        log.warn({ clientId: client.id, username }, 'refused a client: bad username or password');
        return done(authError('bad username or password', BAD_USERNAME_OR_PASSWORD), false);
      }
      roles.set(client, user.role);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      // aedes 2.0.0-beta.1 lets "+" match an empty level when it delivers but not when it queues for a
      // persistent session, then drops that subscriber ("no such packet"): one QoS 1 publish on `P/H/cmd/`
      // disconnected the agent. No topic of ours has an empty level (docs/security.md § What the agent withstands).
      if (client !== null && packet.topic.split('/').includes('')) {
        log.warn(
          { clientId: client.id, topic: packet.topic.slice(0, 200) },
          'refused a publish to a topic with an empty level',
        );
        return done(new Error('a topic level is empty'));
      }
      if (!secured || client === null) return done(null);
      const role = roles.get(client);
      if (role && mayPublish(role, packet.topic, ctx)) return done(null);
      log.warn({ clientId: client.id, topic: packet.topic }, "refused a publish outside the client's role");
      done(new Error('not authorized'));
    },
    authorizeSubscribe(client, sub, done) {
      if (!secured) return done(null, sub);
      const role = roles.get(client);
      if (role && maySubscribe(role, sub.topic, ctx)) return done(null, sub);
      log.warn({ clientId: client.id, topic: sub.topic }, "refused a subscription outside the client's role");
      done(null, null); // negated: SUBACK 0x87 (v5) / 0x80 (v3.1.1)
    },
  });
  // aedes reports persistence failures (a Redis outage, a will it could not publish) here; unheard, they would crash it.
  // (aedes emits 'error', though its types do not list it.)
  (aedes as unknown as EventEmitter).on('error', (err: Error) =>
    log.error({ err: err.message }, 'broker error'),
  );
  aedes.on('connackSent', (_connack, client) => connackFirst.release(client));
  cluster?.attach((topic, onMessage) => aedes.subscribe(topic, onMessage, () => undefined));

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Small packets (acks, results) must not wait for a delayed ACK (Nagle): 40-88 ms per round trip otherwise.
    socket.setNoDelay(true);
    aedes.handle(socket);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await cluster?.close();
    throw listenError(err as NodeJS.ErrnoException, opts.host, opts.port);
  }
  const address = server.address() as net.AddressInfo;
  log.info(
    {
      host: opts.host,
      port: address.port,
      users: users.size,
      mode: secured ? 'users + ACL' : 'anonymous, loopback only',
    },
    'embedded MQTT broker listening',
  );

  return {
    port: address.port,
    host: opts.host,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await cluster?.close();
    },
  };
}

export function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  if (err.code === 'EADDRINUSE') {
    return new PortInUseError(
      `${host}:${port} is in use — is Mosquitto running? Use --port, or point mqtt.url at it`,
      host,
      port,
    );
  }
  if (err.code === 'EACCES') {
    return new ConnectionError(`${host}:${port} needs privileges to listen on — use --port above 1023`);
  }
  if (err.code === 'EADDRNOTAVAIL') {
    return new ConnectionError(
      `${host} is not an address of this machine — use --host 127.0.0.1 or one of its interfaces`,
    );
  }
  return new ConnectionError(`cannot listen on ${host}:${port}: ${err.message}`);
}

function roleOf(u: BrokerUserSpec): Role {
  return u.role === 'agent' ? { role: 'agent', host: u.host ?? '' } : { role: 'controller' };
}

function sha256(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

function isLoopback(socket: net.Socket | undefined): boolean {
  const addr = socket?.remoteAddress ?? '';
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}
