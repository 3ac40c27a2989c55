// aedes-persistence-redis@11 ships no types; startBroker uses only its factory (see cluster.ts).
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis';

  interface RedisPersistenceOptions {
    /** A connection made by the caller, who owns its error handling. */
    conn?: Redis;
    maxSessionDelivery?: number;
  }

  /** A CallBackPersistence: promises when no callback is given, as aedes 2 calls it. */
  export default function persistenceRedis(opts?: RedisPersistenceOptions): unknown;
}
