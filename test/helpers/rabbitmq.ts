import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findBinary } from './mosquitto.js';
import { freePort, waitForPort } from './net.js';

/**
 * RabbitMQ's scripts. Debian's /usr/sbin ones are wrappers that `su` to the
 * rabbitmq user (and so drop our environment); the real scripts live under
 * /usr/lib/rabbitmq/bin. Elsewhere (the generic tarball), PATH has them.
 */
function script(name: string): string | undefined {
  const debian = `/usr/lib/rabbitmq/bin/${name}`;
  if (existsSync(debian)) return debian;
  return findBinary(name);
}

export const RABBITMQ_SERVER = script('rabbitmq-server');
const RABBITMQCTL = script('rabbitmqctl');

/** "3.10.8", from the install's directory name, else from `rabbitmqctl version`. */
export function rabbitVersion(): string | undefined {
  if (!RABBITMQ_SERVER || !RABBITMQCTL) return undefined;
  const m = /rabbitmq_server-(\d+\.\d+\.\d+)/.exec(realpathSync(RABBITMQ_SERVER));
  if (m) return m[1];
  const r = spawnSync(RABBITMQCTL, ['version'], { encoding: 'utf8', timeout: 20_000 });
  return /(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1];
}

/** The MQTT plugin speaks MQTT 5 from RabbitMQ 3.13 on; before, 3.1.1 (and 3.1) only. */
export function speaksMqtt5(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 13);
}

export interface RabbitNode {
  version: string;
  node: string;
  mqttPort: number;
  url: string;
  output: () => string;
  stop(): Promise<void>;
}

/**
 * Our own RabbitMQ node with the MQTT plugin, on free loopback ports, every
 * file in a temp dir — never the machine's node (5672), its config, cookie or data.
 */
export async function startRabbitMQ(timeoutMs = 90_000): Promise<RabbitNode> {
  const version = rabbitVersion();
  if (!RABBITMQ_SERVER || !RABBITMQCTL || !version) throw new Error('rabbitmq-server is not installed');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hc-rabbit-'));
  const [amqpPort, distPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
  const node = `hc${process.pid}${Math.random().toString(36).slice(2, 7)}@localhost`;
  const home = path.join(dir, 'home');
  mkdirSync(home);
  // The Erlang cookie: ours, so rabbitmqctl can stop this node (and only this one).
  const cookie = path.join(home, '.erlang.cookie');
  writeFileSync(cookie, `HCTEST${Math.random().toString(36).slice(2).toUpperCase()}`);
  chmodSync(cookie, 0o400);
  writeFileSync(path.join(dir, 'enabled_plugins'), '[rabbitmq_mqtt].\n');
  writeFileSync(
    path.join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
      'mqtt.allow_anonymous = true', // as the default guest user, which may connect from loopback only
      'log.console = true',
      'log.file = false',
      '',
    ].join('\n'),
  );
  // Our own env file, so the machine's /etc/rabbitmq/rabbitmq-env.conf (its NODENAME) stays out of it.
  writeFileSync(path.join(dir, 'rabbitmq-env.conf'), '');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: path.join(dir, 'rabbit.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
  const proc: ChildProcess = spawn(RABBITMQ_SERVER, [], {
    env,
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  proc.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    try {
      process.kill(-proc.pid!, 'SIGKILL'); // its process group: the script and the Erlang VM it started
    } catch {
      // already gone
    }
    await exited;
  };
  try {
    await Promise.race([
      waitForPort(mqttPort, timeoutMs),
      exited.then(() => Promise.reject(new Error(`rabbitmq-server exited:\n${log.slice(-3000)}`))),
    ]);
  } catch (err) {
    await kill();
    throw err;
  }
  return {
    version,
    node,
    mqttPort,
    url: `mqtt://127.0.0.1:${mqttPort}`,
    output: () => log,
    async stop() {
      // The orderly way, bounded: SIGKILL of the group if the node has not gone within 30 s.
      spawn(RABBITMQCTL, ['-n', node, 'stop'], { env, stdio: 'ignore' }).on('error', () => void kill());
      const deadline = setTimeout(() => void kill(), 30_000);
      await exited;
      clearTimeout(deadline);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
