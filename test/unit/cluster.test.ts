/** broker.cluster: its config keys, and the two fixes applied to the Redis persistence (cluster-persistence.ts). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ClientLocator,
  dropStaleWills,
  shareConcurrentAddSubscriptions,
  type RedisPersistence,
  type StoredWill,
} from '../../src/broker/cluster-persistence.js';
import { redactRedisUrl, redisError } from '../../src/broker/cluster.js';
import { parseConfig } from '../../src/config/load.js';
import { configIssues } from '../helpers/config-issues.js';
import { silentLogger } from '../../src/log.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'homelab-cmd-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SOURCE = path.join(dir, 'broker.yaml');
const parse = (yaml: string) => parseConfig(yaml, SOURCE, {});
const issues = (yaml: string) => configIssues(yaml, SOURCE);

describe('broker.cluster in the config', () => {
  it('is absent by default: a standalone broker', () => {
    expect(parse('').broker.cluster).toBeUndefined();
  });

  it.each([
    'redis://127.0.0.1:6379',
    'redis://redis.lan',
    'rediss://redis.lan:6380',
    'redis://:s3cret@10.0.0.5:6379/2',
    'redis://user:pw@[::1]:6379/',
  ])('accepts %s, with a 5 s heartbeat by default', (url) => {
    const c = parse(`broker:\n  cluster: { redis: "${url}" }\n`).broker.cluster;
    expect(c).toEqual({ redis: url, heartbeat: 5000, password: undefined });
  });

  it.each([
    'http://redis.lan:6379',
    'redis.lan:6379',
    'redis://',
    'redis://host/not-a-db',
    'mqtt://127.0.0.1:1883',
  ])('refuses %s, saying what a Redis URL looks like', (url) => {
    expect(issues(`broker:\n  cluster: { redis: "${url}" }\n`)).toEqual([
      {
        path: 'broker.cluster.redis',
        message:
          'must be a Redis URL like redis://10.0.0.5:6379 (rediss:// for TLS, redis://:PASSWORD@HOST:6379/DB) — the one Redis every clustered broker shares',
      },
    ]);
  });

  it('needs redis, and knows no other keys', () => {
    expect(
      issues('broker:\n  cluster: { heartbeat: 2s, nodes: 3 }\n')
        .map((i) => i.path)
        .sort(),
    ).toEqual(['broker.cluster.nodes', 'broker.cluster.redis']);
  });

  it.each([['500ms'], ['10m']])('refuses a heartbeat of %s', (hb) => {
    expect(issues(`broker:\n  cluster: { redis: "redis://r:6379", heartbeat: ${hb} }\n`)).toEqual([
      {
        path: 'broker.cluster.heartbeat',
        message:
          "must be between 1s and 5m — 5s (the default) puts a dead broker's wills out within about half a minute",
      },
    ]);
  });

  it('reads password_file (one trailing newline dropped), and refuses it beside password', () => {
    writeFileSync(path.join(dir, 'redis.pw'), 'from-a-file\n');
    expect(
      parse('broker:\n  cluster: { redis: "redis://r:6379", password_file: redis.pw }\n').broker.cluster
        ?.password,
    ).toBe('from-a-file');
    expect(
      issues('broker:\n  cluster: { redis: "redis://r:6379", password: a, password_file: redis.pw }\n'),
    ).toEqual([
      { path: 'broker.cluster.password_file', message: 'give password or password_file, not both' },
    ]);
    expect(
      issues('broker:\n  cluster: { redis: "redis://r:6379", password_file: missing.pw }\n')[0]?.path,
    ).toBe('broker.cluster.password_file');
  });
});

describe('Redis errors a person can act on', () => {
  it('names the Redis (password hidden) and the fix', () => {
    const where = redactRedisUrl('redis://:hunter2@10.0.0.5:6379/1');
    expect(where).toBe('redis://***@10.0.0.5:6379/1');
    expect(
      redisError(
        Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:6379'), { code: 'ECONNREFUSED' }),
        where,
      ).message,
    ).toBe(
      'cannot reach Redis at redis://***@10.0.0.5:6379/1 (ECONNREFUSED) for broker.cluster — start Redis there, or fix broker.cluster.redis',
    );
    expect(
      redisError(new Error('WRONGPASS invalid username-password pair or user is disabled.'), where).message,
    ).toMatch(
      /^Redis at redis:\/\/\*\*\*@10\.0\.0\.5:6379\/1 refused the login \(WRONGPASS .*\) — set broker\.cluster\.password/,
    );
    expect(redisError(new Error('timed out'), where).message).toBe(
      'cannot reach Redis at redis://***@10.0.0.5:6379/1 (no answer within 5 s) for broker.cluster — start Redis there, or fix broker.cluster.redis',
    );
    expect(
      redisError(new Error('Protocol error, got "H" as reply type byte. Please report this.'), where).message,
    ).toBe(
      'redis://***@10.0.0.5:6379/1 answered, but not as Redis does — is that the Redis port? Fix broker.cluster.redis',
    );
  });
});

describe('ClientLocator: where each client is connected, across the cluster', () => {
  const will = (clientId: string, brokerId: string): StoredWill => ({
    clientId,
    brokerId,
    topic: `homelab/${clientId}/status`,
  });

  it.each<[string, (l: ClientLocator) => void, boolean]>([
    ['never seen: the will stands', () => undefined, false],
    ['still on the dead broker (no reconnect): the will stands', (l) => l.connected('A', 'c'), false],
    ['reconnected to B: the will is stale', (l) => (l.connected('A', 'c'), l.connected('B', 'c')), true],
    [
      'took over on B, then A reported the old connection closed: still stale',
      (l) => (l.connected('A', 'c'), l.connected('B', 'c'), l.disconnected('A', 'c')),
      true,
    ],
    [
      'reconnected to B, then left B cleanly: the will stands (it is offline)',
      (l) => (l.connected('A', 'c'), l.connected('B', 'c'), l.disconnected('B', 'c')),
      false,
    ],
  ])('%s', (_label, events, stale) => {
    const l = new ClientLocator();
    events(l);
    expect(l.isStale(will('c', 'A'))).toBe(stale);
  });

  it('forgets a client once its will went out', () => {
    const l = new ClientLocator();
    l.connected('A', 'c');
    l.forget(will('c', 'A'));
    expect(l.size).toBe(0);
  });
});

/** An in-memory stand-in with the persistence's shape, to watch what the wrappers call. */
function fakePersistence(wills: StoredWill[]) {
  const calls = { add: 0, del: [] as string[] };
  const p: RedisPersistence = {
    addSubscriptions() {
      calls.add++;
      return new Promise((r) => setTimeout(r, 5));
    },
    async *streamWill() {
      yield* wills;
    },
    delWill(c) {
      calls.del.push(`${c.brokerId}:${c.id}`);
      return Promise.resolve();
    },
  };
  return { p, calls };
}

describe('the persistence fixes', () => {
  it('one SUBSCRIBE of several topics stores and broadcasts once, and every caller gets its answer', async () => {
    const { p, calls } = fakePersistence([]);
    shareConcurrentAddSubscriptions(p);
    const subs = [{ topic: 'a' }, { topic: 'b' }, { topic: 'c' }];
    await Promise.all(subs.map(() => p.addSubscriptions({ id: 'x' }, subs)));
    expect(calls.add).toBe(1);
    await p.addSubscriptions({ id: 'x' }, [{ topic: 'a' }]);
    expect(calls.add).toBe(2);
  });

  it('the will sweep skips and deletes the wills of clients that reconnected elsewhere', async () => {
    const { p, calls } = fakePersistence([
      { clientId: 'moved', brokerId: 'A', topic: 'homelab/moved/status' },
      { clientId: 'gone', brokerId: 'A', topic: 'homelab/gone/status' },
    ]);
    const l = new ClientLocator();
    l.connected('A', 'moved');
    l.connected('A', 'gone');
    l.connected('B', 'moved');
    dropStaleWills(p, l, silentLogger());
    const out: string[] = [];
    for await (const w of p.streamWill({})) out.push(w.clientId);
    expect(out).toEqual(['gone']);
    expect(calls.del).toEqual(['A:moved']);
  });
});
