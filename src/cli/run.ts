/** The verbs that run the embedded broker: `up` (broker + agent) and `broker`. */
import path from 'node:path';
import { Agent } from '../agent/agent.js';
import { startBroker, type RunningBroker } from '../broker/broker.js';
import { exampleConfigPath, loadConfig, type Config } from '../config/load.js';
import { ConnectionError, PortInUseError, UsageError } from '../errors.js';
import { hostTopics } from '../core/topics.js';
import { createLogger, type Logger } from '../log.js';
import { commandForm } from './command-form.js';
import { err, intOption, out, parse, type Verb } from './args.js';
import { serve, setUpAgentProcess } from './serve.js';
import { upRecordPath, writeUpRecord } from './up-record.js';

function brokerFor(
  config: Config,
  log: Logger,
  port: number,
  host = config.broker.host,
): Promise<RunningBroker> {
  return startBroker({
    host,
    port,
    users: config.broker.users.map((u) => ({
      username: u.username,
      password: u.password ?? '',
      role: u.role,
      host: u.host,
      clientId: u.client_id,
    })),
    maxPacketSize: config.broker.max_packet_size,
    prefix: config.mqtt.prefix,
    discoveryPrefix: config.discovery.prefix,
    log: log.child({ module: 'broker' }),
    cluster: config.broker.cluster && {
      redis: config.broker.cluster.redis,
      password: config.broker.cluster.password,
      heartbeatMs: config.broker.cluster.heartbeat,
    },
    stateDir:
      config.broker.persistence === 'disk'
        ? (config.broker.state_dir ?? path.join(config.state_dir, 'broker'))
        : undefined,
  });
}

/**
 * Where `up`'s agent reaches its own broker: the address the socket is bound to, never a name that
 * could resolve elsewhere; an unspecified address by the loopback of its own family, so the agent
 * cannot land on another process holding the same port of the other family (docs/security.md §
 * `homelab-cmd up` on a shared machine).
 */
function urlHost(address: string): string {
  if (address === '0.0.0.0' || address === '') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

export const upVerb: Verb = {
  name: 'up',
  usage: `Usage: homelab-cmd up [--config FILE] [--port N]

Starts the embedded broker (aedes, MQTT 5 and 3.1.1) on 127.0.0.1:N (default
broker.port, 1883) and an agent for this host connected to it. Without
--config it uses the package's config/agent.example.yaml.
The agent connects only to this embedded broker: mqtt.url of the config is
ignored, and up never connects to, or sends credentials to, a broker it did not
start. If the port is taken (say by a Mosquitto) and --port was not given, the
embedded broker listens on a free port instead, and says so; a taken --port is
an error. send, status, explain and discovery find the running up by
themselves (its address is in $XDG_RUNTIME_DIR/homelab-cmd/up.json).`,
  async run(argv) {
    // `npm start --port 1884` reaches us as `up 1884`: npm takes options before `--` as its own.
    const lone = argv.length === 1 && /^\d+$/.test(argv[0]!) ? argv[0] : undefined;
    if (lone !== undefined && process.env.npm_lifecycle_event === 'start')
      throw new UsageError(
        `npm kept --port for itself, so up got only "${lone}": pass options after --, as in npm start -- --port ${lone}`,
      );
    const { values } = parse(this, argv, {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
    });
    if (values.help) return (out(this.usage), 0);
    const file = path.resolve(values.config ?? exampleConfigPath());
    const config = loadConfig(file);
    const explicitPort = intOption('port', values.port, 0, 65_535);
    const port = explicitPort ?? config.broker.port;
    const log = createLogger();

    // Only a broker this process started: whatever else holds the port may be anyone's (docs/security.md § homelab-cmd up on a shared machine).
    let broker: RunningBroker;
    try {
      broker = await brokerFor(config, log, port);
    } catch (e) {
      if (!(e instanceof PortInUseError)) throw e;
      if (explicitPort !== undefined)
        throw new PortInUseError(
          `${e.host}:${port} is taken (a Mosquitto?) — pass another --port, or none and up picks a free one`,
          e.host,
          port,
        );
      broker = await brokerFor(config, log, 0);
      err(
        `homelab-cmd: ${e.host}:${port} is taken (a Mosquitto?) — the embedded broker listens on ${urlHost(broker.address)}:${broker.port} instead; the tour's commands find it`,
      );
    }
    const url = `mqtt://${urlHost(broker.address)}:${broker.port}`;

    const agent = new Agent(config, log, { url, demo: values.config === undefined });
    try {
      setUpAgentProcess();
      agent.start();
      await agent.waitConnected(10_000);
    } catch (e) {
      await agent.stop();
      await broker.close();
      // The broker is ours and listening: what keeps its own agent out is a login that broker.users refuses.
      throw new ConnectionError(
        `the agent could not log in to its own broker at ${url} (${(e as Error).message}) — ${
          config.broker.users.length > 0
            ? `check that mqtt.username and mqtt.password of ${file} match a user in broker.users`
            : 'see the log lines above'
        }`,
      );
    }
    let removeRecord = () => undefined as void;
    try {
      removeRecord = writeUpRecord({ url, prefix: config.mqtt.prefix, pid: process.pid, config: file });
    } catch (e) {
      err(
        `homelab-cmd: could not write ${upRecordPath()} (${(e as Error).message}) — give the other commands --url ${url}`,
      );
    }
    const H = config.host;
    const P = config.mqtt.prefix;
    const cli = commandForm({ bin: process.argv[1] ?? '', cwd: process.cwd(), pathEnv: process.env.PATH });
    const first = Object.keys(config.actions)[0];
    out(
      [
        `homelab-cmd: host "${H}" is online at ${url} (embedded broker, MQTT 5 and 3.1.1); config ${file}`,
        `Try it, in another terminal:`,
        `  ${cli} status`,
        ...(first ? [`  ${cli} send ${H} ${first}`] : []),
        `  mosquitto_sub -p ${broker.port} -v -t '${P}/#'`,
        `  mosquitto_pub -p ${broker.port} -t '${hostTopics(P, H).cmdAction(first ?? 'ACTION')}' -m ''`,
        `Stop with Ctrl-C.`,
      ].join('\n'),
    );
    try {
      return await serve(log, agent, broker);
    } finally {
      removeRecord();
    }
  },
};

export const brokerVerb: Verb = {
  name: 'broker',
  usage: `Usage: homelab-cmd broker [--config FILE] [--port N] [--host ADDR]

Runs the embedded broker (aedes, MQTT 5 and 3.1.1). broker.users in FILE give
username/password auth and the agent/controller roles; with no users, only
anonymous clients from loopback are accepted. With broker.cluster, several of
these brokers share one Redis (docs/scaling.md).`,
  async run(argv) {
    const { values } = parse(this, argv, {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
    });
    if (values.help) return (out(this.usage), 0);
    const config = loadConfig(values.config ?? exampleConfigPath());
    const log = createLogger();
    const broker = await brokerFor(
      config,
      log,
      intOption('port', values.port, 0, 65_535) ?? config.broker.port,
      values.host ?? config.broker.host,
    );
    out(
      `homelab-cmd: embedded broker listening on ${broker.host}:${broker.port}${config.broker.cluster ? ', clustered over Redis' : ''}`,
    );
    return serve(log, undefined, broker);
  },
};
