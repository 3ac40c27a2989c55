/** The verbs that run the embedded broker: `up` (broker + agent) and `broker`. */
import { Agent } from '../agent/agent.js';
import { startBroker, type RunningBroker } from '../broker/broker.js';
import { exampleConfigPath, loadConfig, type Config } from '../config/load.js';
import { PortInUseError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { connectClient } from './client.js';
import { err, intOption, out, parse, type Verb } from './args.js';
import { serve } from './serve.js';

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
  });
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export const upVerb: Verb = {
  name: 'up',
  usage: `Usage: homelab-cmd up [--config FILE] [--port N]

Starts the embedded broker (aedes, MQTT 5 and 3.1.1) on 127.0.0.1:N (default
broker.port, 1883) and an agent for this host connected to it. Without
--config it uses the package's config/agent.example.yaml.
If the port is already taken by an MQTT broker (say Mosquitto) and --port was
not given, the agent connects to that broker instead, and says so.`,
  async run(argv) {
    const { values } = parse(this, argv, {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
    });
    if (values.help) return (out(this.usage), 0);
    const file = values.config ?? exampleConfigPath();
    const config = loadConfig(file);
    const explicitPort = intOption('port', values.port, 0, 65_535);
    const port = explicitPort ?? config.broker.port;
    const log = createLogger();

    let broker: RunningBroker | undefined;
    let url: string;
    try {
      broker = await brokerFor(config, log, port);
      url = `mqtt://${urlHost(config.broker.host)}:${broker.port}`;
    } catch (e) {
      // The user already runs a broker on the default port: what they want is an agent on it, not an error.
      if (!(e instanceof PortInUseError) || explicitPort !== undefined) throw e;
      url = `mqtt://${urlHost(config.broker.host)}:${port}`;
      const probe = await connectClient({
        url,
        username: config.mqtt.username,
        password: config.mqtt.password,
        connectTimeoutMs: 3000,
      }).catch((pe: unknown) => pe as Error);
      if (probe instanceof Error) {
        throw new PortInUseError(
          `${e.host}:${port} is in use, and not by an MQTT broker this agent can use (${probe.message.split(' — ')[0]}) — free the port, or pass --port N for the embedded broker`,
          e.host,
          port,
        );
      }
      probe.end(true);
      err(
        `homelab-cmd: ${e.host}:${port} already has an MQTT broker (Mosquitto?) — using it instead of starting the embedded one; pass --port N to run the embedded broker beside it.`,
      );
    }

    const agent = new Agent(config, log, { url });
    try {
      agent.start();
      await agent.waitConnected(10_000);
    } catch (e) {
      await agent.stop();
      await broker?.close();
      throw e;
    }
    const H = config.host;
    const P = config.mqtt.prefix;
    const portOf = new URL(url).port;
    out(
      [
        `homelab-cmd: host "${H}" is online at ${url} (${broker ? 'embedded broker, MQTT 5 and 3.1.1' : 'existing broker'}); config ${file}`,
        `Try it, in another terminal:`,
        `  npx homelab-cmd status --url ${url}`,
        ...Object.keys(config.actions)
          .slice(0, 1)
          .map((a) => `  npx homelab-cmd send ${H} ${a} --url ${url}`),
        `  mosquitto_sub -p ${portOf} -v -t '${P}/#'`,
        `  mosquitto_pub -p ${portOf} -t '${P}/${H}/cmd/${Object.keys(config.actions)[0] ?? 'ACTION'}' -m ''`,
        `Stop with Ctrl-C.`,
      ].join('\n'),
    );
    return serve(log, agent, broker);
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
