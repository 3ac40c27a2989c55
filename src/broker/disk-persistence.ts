/**
 * broker.persistence: disk — the embedded broker's sessions (subscriptions of clients that asked
 * to be remembered), their queued QoS 1/2 messages, retained messages and wills kept in a LevelDB
 * directory, so a broker restart (SIGTERM or a crash) loses nothing a client was promised
 * (docs/brokers.md § What survives a broker restart).
 * Loaded on demand by startBroker: an agent, or a broker with persistence: memory, never loads it.
 *
 * Versions: aedes 2.0.0-beta.1 names aedes-persistence-level ^9.1.2 as its optional peer; 9.1.3
 * is the last release on aedes-persistence 10, the callback-style interface this aedes calls
 * (9.2.0 moved to aedes-persistence 11, as aedes-persistence-redis@12 did, which crashes it).
 * classic-level ships its LevelDB binding prebuilt inside the npm package (linux x64, arm64, arm,
 * musl): installing it downloads and compiles nothing. The published package carries those Linux
 * bindings (scripts/bundle.mjs); where none fits, the import below fails and openError says so.
 */
import { mkdirSync } from 'node:fs';
import persistenceLevel from 'aedes-persistence-level';
import type { ClassicLevel } from 'classic-level';
import { ConnectionError } from '../errors.js';
import type { Logger } from '../log.js';

/** What aedes needs, and what to close after aedes.close() (which leaves its persistence open). */
export interface DiskPersistence {
  persistence: unknown;
  close(): Promise<void>;
}

export async function openDiskPersistence(dir: string, log: Logger): Promise<DiskPersistence> {
  let db: ClassicLevel<string, Buffer>;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Here, not at the top: loading the binding fails on a platform without one (a message, not a crash).
    // Through `default` (CommonJS module.exports): a bundled dynamic import of CommonJS has no named exports.
    const { ClassicLevel } = (await import('classic-level')).default;
    db = new ClassicLevel<string, Buffer>(dir);
    await db.open();
  } catch (err) {
    throw openError(err as Error & { code?: string; cause?: Error & { code?: string } }, dir);
  }
  // Debug: the broker's "listening" line says where its state is, once it is really up.
  log.debug(
    { dir },
    'broker state on disk: sessions, queued QoS 1/2 messages and retained messages survive a restart',
  );
  return {
    persistence: persistenceLevel(db),
    async close() {
      await db.close();
    },
  };
}

function openError(err: Error & { code?: string; cause?: Error & { code?: string } }, dir: string): Error {
  // LevelDB holds a lock on its directory: a second broker on it fails with LEVEL_LOCKED.
  if (err.cause?.code === 'LEVEL_LOCKED' || err.code === 'LEVEL_LOCKED') {
    return new ConnectionError(
      `the broker state in ${dir} is in use by another homelab-cmd broker (or up) — stop that one, or give this one its own broker.state_dir (or broker.persistence: memory)`,
    );
  }
  const why = err.cause?.message ?? err.code ?? err.message;
  return new ConnectionError(
    `cannot open the broker state in ${dir} (${why}) — give the broker's user a writable broker.state_dir, or set broker.persistence: memory`,
  );
}
