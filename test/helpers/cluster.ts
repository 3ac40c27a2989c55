import { spawnCli, type AgentProcess } from './agent.js';
import { writeConfig } from './fixtures.js';
import { startRedis, type RedisProcess } from './redis.js';
import { until } from './wait.js';

export interface ClusterBroker {
  port: number;
  url: string;
  process: AgentProcess;
  /** SIGKILL: no goodbye to its clients, its wills left in Redis for the other brokers. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `homelab-cmd broker --port 0` as a real process (a killed broker must really die), on a cluster config. */
export async function startClusterBroker(
  configFile: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ClusterBroker> {
  const p = spawnCli(['broker', '--config', configFile, '--port', '0'], env);
  let port = 0;
  let exited = false;
  void p.exited.then(() => (exited = true));
  await until(
    () => {
      if (exited) throw new Error(`the broker exited before listening:\n${p.output()}`);
      port = Number(/embedded broker listening on 127\.0\.0\.1:(\d+)/.exec(p.output())?.[1] ?? 0);
      return port > 0;
    },
    20_000,
    'a clustered broker to listen',
  );
  const end = async (signal: NodeJS.Signals) => {
    if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
    p.proc.kill(signal);
    await p.exited;
  };
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    process: p,
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
  };
}

export interface Cluster {
  redis: RedisProcess;
  configFile: string;
  brokers: ClusterBroker[];
  stop(): Promise<void>;
}

/** A Redis of its own and `count` brokers clustered over it; `broker` is merged into each one's config. */
export async function startCluster(
  dir: string,
  count: number,
  broker: Record<string, unknown> = {},
): Promise<Cluster> {
  const redis = await startRedis();
  const brokers: ClusterBroker[] = [];
  const configFile = writeConfig(
    dir,
    { broker: { host: '127.0.0.1', ...broker, cluster: { redis: redis.url, heartbeat: '1s' } } },
    'broker.yaml',
  );
  try {
    for (let i = 0; i < count; i++) brokers.push(await startClusterBroker(configFile));
  } catch (err) {
    await Promise.all(brokers.map((b) => b.kill()));
    await redis.stop();
    throw err;
  }
  return {
    redis,
    configFile,
    brokers,
    async stop() {
      await Promise.all(brokers.map((b) => b.kill()));
      await redis.stop();
    },
  };
}
