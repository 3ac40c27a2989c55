/**
 * The embedded broker: aedes 2 (MQTT 5 and 3.1.1) behind one small interface.
 * With users: username/password and the contract's role ACL.
 * Without users: anonymous clients, from loopback only.
 * With a cluster: its messages and state in a Redis other brokers share (cluster.ts).
 * With a state directory: its sessions and retained messages on disk (disk-persistence.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { ConnectionError, PortInUseError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ClusterBackend, ClusterSpec } from './cluster.js';
import { mayPublish, mayRead, maySubscribe, type AclContext, type Role } from './acl.js';
import { ackAfterStore } from './ack-after-store.js';
import { STAMPING_BROKER } from '../core/sender.js';
import { ConnackFirst } from './connack-first.js';
import { dedupeInAnyOrder } from './ordered-dedupe.js';
import { Identities, isCommandTopic, refuseDiscovery, refuseWill, stampUser } from './identity.js';
import {
  DEFAULT_MAX_PACKET_SIZE,
  MAX_CONNECT_SIZE,
  limitFirstPacket,
  publishWireSize,
} from './packet-size.js';

export interface BrokerUserSpec {
  username: string;
  password: string;
  role: 'agent' | 'controller';
  host?: string | undefined;
  /** An agent's mqtt.client_id, when it sets one (else `homelab-cmd-<host>`). */
  clientId?: string | undefined;
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
  /** broker.persistence: disk — keep sessions, queued messages and retained messages here (ignored with a cluster). */
  stateDir?: string | undefined;
  /** broker.max_packet_size: a larger packet from a client disconnects it (docs/security.md § Packet sizes). */
  maxPacketSize?: number | undefined;
}

export interface RunningBroker {
  port: number;
  host: string;
  /** The address the socket is bound to (a name in `host` resolved; `::` or `0.0.0.0` as such). */
  address: string;
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
  const usernames = new WeakMap<Client, string>();
  const identities = new Identities(opts.users);
  const maxPacketSize = opts.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
  const secured = users.size > 0;
  // Imported only here: a broker without a cluster (and every agent) never loads Redis code.
  const cluster: ClusterBackend | undefined =
    opts.cluster &&
    (await (
      await import('./cluster.js')
    ).connectCluster(opts.cluster, log, (will) =>
      // The node that checked it at CONNECT is dead: judged by the account its client id belongs to.
      secured
        ? refuseWill(
            identities.roleOfClientId(will.clientId),
            { topic: will.topic, payload: will.payload ?? '' },
            ctx,
          )
        : undefined,
    ));
  // Likewise LevelDB: loaded only by a broker that keeps its state on disk.
  const disk =
    !cluster && opts.stateDir !== undefined
      ? await (await import('./disk-persistence.js')).openDiskPersistence(opts.stateDir, log)
      : undefined;
  // No message to a resuming session before its CONNACK (connack-first.ts).
  const connackFirst = new ConnackFirst();

  const aedes = await Aedes.createBroker({
    ...(cluster && {
      mq: cluster.mq,
      persistence: cluster.persistence,
      heartbeatInterval: cluster.heartbeatInterval,
    }),
    ...(disk && { persistence: disk.persistence }),
    // Read from each packet's fixed header as it arrives, announced in the CONNACK (packet-size.ts).
    maximumPacketSize: maxPacketSize,
    // Tells an agent that asks that commands carry the authenticated user (core/sender.ts).
    ...(secured && { responseInformation: STAMPING_BROKER }),
    preConnect(client, _packet, done) {
      connackFirst.hold(client);
      dedupeInAnyOrder(client);
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
      const name = username as string; // found in users
      // Before the session is looked up: a session and its queued commands belong to one account.
      const will = (client as unknown as { _will: WillPacket | null })._will;
      const refusal =
        identities.refuseClientId(name, user.role, client.id) ??
        (will ? refuseWill(user.role, will, ctx) : undefined);
      if (refusal) {
        log.warn({ clientId: client.id, username, reason: refusal }, `refused a client: ${refusal}`);
        return done(authError(refusal, NOT_AUTHORIZED), false);
      }
      // The will goes out later, maybe from another broker of a cluster: it carries its sender now.
      if (will && isCommandTopic(will.topic, ctx)) will.properties = stampUser(will.properties, name);
      roles.set(client, user.role);
      usernames.set(client, name);
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
      if (!secured) return done(null);
      // No client: the will of a client of a dead cluster node, judged by the account its id belongs to.
      const willOf = (packet as { clientId?: string }).clientId ?? '';
      const role = client === null ? identities.roleOfClientId(willOf) : roles.get(client);
      const refusal =
        role === undefined || !mayPublish(role, packet.topic, ctx)
          ? "outside the client's role"
          : refuseDiscovery(role, packet.topic, packet.payload, ctx);
      if (refusal === undefined) {
        const username = client === null ? undefined : usernames.get(client);
        if (username !== undefined && isCommandTopic(packet.topic, ctx))
          packet.properties = stampUser(packet.properties, username);
        return done(null);
      }
      log.warn(
        { clientId: client?.id ?? willOf, topic: packet.topic, reason: refusal },
        client === null ? 'refused the will of a client of a dead broker' : 'refused a publish',
      );
      done(new Error('not authorized'));
    },
    authorizeForward(client, packet) {
      // Deliveries re-checked against read rights: a subscription granted once is not a blank cheque.
      const role = roles.get(client);
      if (secured && (role === undefined || !mayRead(role, packet.topic, ctx))) return null;
      // [MQTT-3.1.2-24] never more than the client said it accepts (aedes 2.0.0-beta.1 sends it anyway).
      const max = (client as unknown as { maximumPacketSize?: number }).maximumPacketSize;
      if (max !== undefined && publishWireSize(packet, client.version ?? 4) > max) {
        log.warn(
          { clientId: client.id, topic: packet.topic, maximumPacketSize: max },
          "dropped a message larger than the client's Maximum Packet Size",
        );
        return null;
      }
      return packet;
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
  // With state on disk, a PUBACK must promise the message is on disk (ack-after-store.ts).
  if (disk) ackAfterStore(aedes);
  cluster?.attach((topic, onMessage) => aedes.subscribe(topic, onMessage, () => undefined));

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Small packets (acks, results) must not wait for a delayed ACK (Nagle): 40-88 ms per round trip otherwise.
    socket.setNoDelay(true);
    // Before aedes' parser sees a byte: a huge CONNECT is never buffered (packet-size.ts).
    limitFirstPacket(socket, MAX_CONNECT_SIZE, (size) =>
      log.warn(
        { remote: socket.remoteAddress, size, limit: MAX_CONNECT_SIZE },
        'refused a connection: its first packet (CONNECT) is too large',
      ),
    );
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
    await disk?.close();
    throw listenError(err as NodeJS.ErrnoException, opts.host, opts.port);
  }
  const address = server.address() as net.AddressInfo;
  log.info(
    {
      host: opts.host,
      port: address.port,
      users: users.size,
      mode: secured ? 'users + ACL' : 'anonymous, loopback only',
      state: cluster ? 'redis (broker.cluster)' : disk ? opts.stateDir : 'memory',
    },
    'embedded MQTT broker listening',
  );

  return {
    port: address.port,
    host: opts.host,
    address: address.address,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await cluster?.close();
      await disk?.close();
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

interface WillPacket {
  topic: string;
  payload: Buffer;
  properties?: { userProperties?: Record<string, string | string[]> };
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
