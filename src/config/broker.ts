/**
 * `broker:` — the embedded broker: where it listens, its users and their roles, packet size,
 * persistence and clustering over Redis (docs/brokers.md, docs/security.md § Broker identities).
 * Mounted by schema.ts; its own module because only the broker reads it, never the agent.
 */
import { z } from 'zod';
import { hostId, positiveDuration, secretFields } from './fields.js';

const userSchema = z
  .strictObject({
    username: z.string().min(1),
    ...secretFields,
    role: z.enum(['agent', 'controller'], { error: 'role must be agent or controller' }),
    host: hostId.optional(),
    // The one client id an agent user may connect with, when its agent sets mqtt.client_id (docs/security.md § Broker identities).
    client_id: z.string().min(1).max(128).optional(),
  })
  .superRefine((user, ctx) => {
    if ((user.password === undefined) === (user.password_file === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of password or password_file' });
    }
    if (user.role === 'agent' && user.host === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['host'],
        message: 'an agent user is bound to one host — add host: <its host id>',
      });
    }
  });

/** A Redis URL, the way ioredis reads it: redis:// or rediss:// (TLS), a host, optionally a port and a db number. */
function isRedisUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (
      (u.protocol === 'redis:' || u.protocol === 'rediss:') &&
      u.hostname !== '' &&
      /^\/?\d*$/.test(u.pathname)
    );
  } catch {
    return false;
  }
}

// broker.cluster: several embedded brokers share subscriptions, retained messages, sessions and wills through one Redis.
const clusterSchema = z
  .strictObject({
    redis: z.string().refine(isRedisUrl, {
      message:
        'must be a Redis URL like redis://10.0.0.5:6379 (rediss:// for TLS, redis://:PASSWORD@HOST:6379/DB) — the one Redis every clustered broker shares',
    }),
    // Redis AUTH password; either one replaces a password written in the URL.
    ...secretFields,
    // How often each broker tells the others it is alive: a dead broker's clients' wills go out 3 to 7 of these after it dies.
    heartbeat: positiveDuration
      .refine((ms) => ms >= 1000 && ms <= 300_000, {
        message:
          "must be between 1s and 5m — 5s (the default) puts a dead broker's wills out within about half a minute",
      })
      .default(5_000),
  })
  .refine((c) => c.password === undefined || c.password_file === undefined, {
    path: ['password_file'],
    message: 'give password or password_file, not both',
  });

export const brokerSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.int().min(0).max(65_535).default(1883),
  users: z
    .array(userSchema)
    .default([])
    .superRefine((users, ctx) => {
      // Each agent's client id is its own: two accounts on one id would take each other's session.
      const seen = new Map<string, number>();
      users.forEach((u, i) => {
        if (u.role !== 'agent' || u.host === undefined) return;
        for (const id of new Set([`homelab-cmd-${u.host}`, u.client_id ?? `homelab-cmd-${u.host}`])) {
          const first = seen.get(id);
          if (first !== undefined && first !== i)
            ctx.addIssue({
              code: 'custom',
              path: [i, 'client_id'],
              message: `client id ${id} is already agent users.${first}'s — give each agent its own host and client_id`,
            });
          seen.set(id, i);
        }
      });
    }),
  // Bytes; 64 KiB up to 256 MiB (docs/security.md § Packet sizes).
  max_packet_size: z.int().min(65_536).max(268_435_455).default(1_048_576),
  cluster: clusterSchema.optional(),
  // disk: sessions, queued QoS 1 messages and retained messages survive a broker restart (docs/brokers.md).
  persistence: z
    .enum(['disk', 'memory'], {
      error: 'persistence must be disk (survives a restart) or memory (forgets at every restart)',
    })
    .default('disk'),
  // Where persistence: disk keeps them; default <state_dir>/broker.
  state_dir: z.string().min(1).optional(),
});
export type BrokerUser = z.output<typeof userSchema>;
