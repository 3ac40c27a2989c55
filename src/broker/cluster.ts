/**
 * broker.cluster: the embedded broker's message bus (mqemitter-redis) and state
 * (aedes-persistence-redis) in one Redis that several `homelab-cmd broker`
 * processes share, so a client on one broker and an agent on another see each
 * other, and retained messages, sessions and wills are the same on all of them.
 * Loaded on demand by startBroker: an agent, or a broker without a cluster,
 * never loads Redis code.
 *
 * Versions: aedes 2.0.0-beta.1 names aedes-persistence-redis ^11.2.1 as its
 * optional peer (both on aedes-persistence 10); @12 is on aedes-persistence 11
 * and npm refuses it beside this aedes. mqemitter-redis@7 is on mqemitter 7,
 * as this aedes is.
 */
import { Redis, type RedisOptions } from 'ioredis';
import mqemitterRedis from 'mqemitter-redis';
import persistenceRedis from 'aedes-persistence-redis';
import { ConnectionError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  ClientLocator,
  dropStaleWills,
  shareConcurrentAddSubscriptions,
  type RedisPersistence,
  type WillCheck,
} from './cluster-persistence.js';

export interface ClusterSpec {
  /** redis:// or rediss:// URL, validated by the config schema. */
  redis: string;
  /** Replaces a password written in the URL. */
  password?: string | undefined;
  /** aedes' broker heartbeat: a broker silent for 3 of these is dead, and its clients' wills go out. */
  heartbeatMs: number;
}

/** What aedes needs to run clustered, and what to close after it. */
export interface ClusterBackend {
  mq: unknown;
  persistence: unknown;
  heartbeatInterval: number;
  /** Feeds the cluster-wide client map from aedes' `$SYS` messages; call once the broker listens. */
  attach(
    subscribe: (
      topic: string,
      onMessage: (packet: { topic: string; payload: Buffer | string }, done: () => void) => void,
    ) => void,
  ): void;
  /** After aedes.close() (which closes the message bus): the persistence's Redis connection. */
  close(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 5000;

export async function connectCluster(
  spec: ClusterSpec,
  log: Logger,
  checkWill?: WillCheck,
): Promise<ClusterBackend> {
  const where = redactRedisUrl(spec.redis);
  const options: RedisOptions = spec.password === undefined ? {} : { password: spec.password };
  await probe(spec.redis, options, where);

  const health = redisHealth(where, log);
  const connect = (role: string): Redis => {
    const conn = new Redis(spec.redis, { ...options, connectionName: `homelab-cmd-broker-${role}` });
    conn.on('error', health.error);
    conn.on('ready', health.ready);
    return conn;
  };
  const persistenceConn = connect('state');
  const mq = mqemitterRedis({ subConn: connect('sub'), pubConn: connect('pub') });
  // mqemitter-redis re-emits connection errors on `state`; an EventEmitter 'error' with no listener would throw.
  (mq as unknown as { state: NodeJS.EventEmitter }).state.on('error', () => undefined);
  const persistence = persistenceRedis({ conn: persistenceConn }) as RedisPersistence;
  const locator = new ClientLocator();
  shareConcurrentAddSubscriptions(persistence);
  dropStaleWills(persistence, locator, log, checkWill);
  log.info(
    { redis: where, heartbeatMs: spec.heartbeatMs },
    'clustered over Redis: subscriptions, retained messages, sessions and wills are shared with the other brokers on it',
  );

  return {
    mq,
    persistence,
    heartbeatInterval: spec.heartbeatMs,
    attach(subscribe) {
      const brokerOf = (topic: string) => topic.split('/')[1] ?? '';
      subscribe('$SYS/+/new/clients', (packet, done) => {
        locator.connected(brokerOf(packet.topic), packet.payload.toString());
        done();
      });
      subscribe('$SYS/+/disconnect/clients', (packet, done) => {
        locator.disconnected(brokerOf(packet.topic), packet.payload.toString());
        done();
      });
    },
    async close() {
      health.closing = true;
      await persistenceConn.quit().catch(() => persistenceConn.disconnect());
    },
  };
}

/** One connection that never retries: Redis must be there at start, or the broker says so and exits. */
async function probe(url: string, options: RedisOptions, where: string): Promise<void> {
  // disconnectTimeout: a half-open socket would otherwise keep the process up 2 s after the error is printed.
  const conn = new Redis(url, {
    ...options,
    lazyConnect: true,
    retryStrategy: () => null,
    connectTimeout: PROBE_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    disconnectTimeout: 100,
  });
  let lastError: Error | undefined;
  conn.on('error', (err: Error) => (lastError = err));
  let timer: NodeJS.Timeout | undefined;
  // One deadline for connect, ready check and PING: a port that accepts but never answers must not hang the start.
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([conn.connect().then(() => conn.ping()), deadline]);
  } catch (err) {
    throw redisError(lastError ?? (err as Error), where);
  } finally {
    clearTimeout(timer);
    conn.disconnect();
  }
}

export function redisError(err: Error & { code?: string }, where: string): ConnectionError {
  const msg = err.message;
  if (/NOAUTH|WRONGPASS|invalid password|AUTH/i.test(msg)) {
    return new ConnectionError(
      `Redis at ${where} refused the login (${msg.split('\n')[0]}) — set broker.cluster.password (or password_file), or the password in broker.cluster.redis`,
    );
  }
  if (/Protocol error/i.test(msg)) {
    return new ConnectionError(
      `${where} answered, but not as Redis does — is that the Redis port? Fix broker.cluster.redis`,
    );
  }
  const reason =
    err.code ??
    (/timed? ?out/i.test(msg) ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s` : msg.split('\n')[0]);
  return new ConnectionError(
    `cannot reach Redis at ${where} (${reason}) for broker.cluster — start Redis there, or fix broker.cluster.redis`,
  );
}

/** Logs an outage once and its end once, however many connections and retries it takes. */
function redisHealth(where: string, log: Logger) {
  const state = {
    closing: false,
    down: false,
    error: (err: Error) => {
      if (state.closing || state.down) return;
      state.down = true;
      log.error(
        { redis: where, err: err.message },
        'lost Redis: messages between the clustered brokers (and through this one) wait until it is back; retrying',
      );
    },
    ready: () => {
      if (!state.down) return;
      state.down = false;
      log.info({ redis: where }, 'Redis is back');
    },
  };
  return state;
}

export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
