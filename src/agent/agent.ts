/**
 * The agent: wires the MQTT session, the command pipeline, heartbeats and
 * status together, with an explicit start()/stop() lifecycle.
 */
import type { Config } from '../config/load.js';
import { brokerUrls } from '../core/failover.js';
import { haStatusTopic, hostTopics, type HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { DiscoveryPublisher } from './discovery.js';
import { agentRoutes, Dispatcher } from './dispatch.js';
import { readHeartbeat } from './heartbeat.js';
import { ParamStore } from './params.js';
import { Probes } from './probes.js';
import { Updates } from './updates.js';
import { Journal } from './journal.js';
import { Pipeline } from './pipeline.js';
import type { Publisher } from './publisher.js';
import { isolationAtStart } from './private-files.js';
import { MqttSession } from './session.js';
import { removeStaleTemps } from './state-file.js';
import { StateHealth } from './state-health.js';
import { StatusGuard } from './status-guard.js';
import { fleetSubscriptions } from './stagger.js';

export interface AgentOptions {
  /** Overrides mqtt.url (used by `up`, which connects to its own embedded broker). */
  url?: string | readonly string[];
  backoff?: { initialMs: number; maxMs: number };
  /**
   * `up` on the package's own demo config: on a newcomer's own machine, commands running as the user
   * who started it is the point of the demo, so the start-up isolation advice is logged at info, not
   * as warnings (docs/security.md § Commands run as another user).
   */
  demo?: boolean;
}

export class Agent {
  readonly topics: HostTopics;
  private session: MqttSession | undefined;
  private pipeline: Pipeline | undefined;
  private journal: Journal | undefined;
  private discovery: DiscoveryPublisher | undefined;
  private probes: Probes | undefined;
  private updates: Updates | undefined;
  private statusGuard: StatusGuard | undefined;
  private paramStore: ParamStore | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private health: StateHealth | undefined;
  private pendingPublishes = 0;
  private stopped = false;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly opts: AgentOptions = {},
  ) {
    this.topics = hostTopics(config.mqtt.prefix, config.host);
  }

  /** The brokers, in failover order. */
  get urls(): string[] {
    return brokerUrls(this.opts.url ?? this.config.mqtt.url);
  }

  /** Opens state, starts connecting; resolves without waiting for the broker (use waitConnected). */
  start(): void {
    const { config, log } = this;
    // Children inherit it: files a command creates are private to its user.
    process.umask(0o077);
    // Before anything is opened: a run user that should exist and does not stops the start.
    const isolation = isolationAtStart(config, log.child({ module: 'isolation' }), this.opts.demo === true);
    // A full state_dir is a degraded mode, not a crash: start, go online, refuse new requests until space returns.
    removeStaleTemps(config.state_dir, log);
    const health = new StateHealth(config.state_dir, log.child({ module: 'state' }), () => {
      if (this.session?.connected) void this.publishHeartbeat();
    });
    this.health = health;
    const journal = new Journal(config.state_dir, log.child({ module: 'journal' }), undefined, health);
    const unfinished = journal.open();
    health.check();
    this.journal = journal;

    const haStatus = haStatusTopic(config.discovery.prefix);
    const staggered = Object.values(config.actions).some((a) => a.stagger);
    const session = new MqttSession({
      urls: this.urls,
      clientId: config.mqtt.client_id ?? `homelab-cmd-${config.host}`,
      username: config.mqtt.username,
      password: config.mqtt.password,
      keepaliveMs: config.mqtt.keepalive,
      caFile: config.mqtt.ca_file,
      certFile: config.mqtt.cert_file,
      keyFile: config.mqtt.key_file,
      insecure: config.mqtt.insecure,
      will: { topic: this.topics.status, payload: 'offline' },
      subscriptions: [
        this.topics.cmd,
        this.topics.cmdWildcard,
        this.topics.paramSetFilter,
        haStatus,
        ...(staggered ? fleetSubscriptions(config.mqtt.prefix) : [this.topics.status]),
      ],
      log: log.child({ module: 'mqtt' }),
      backoff: this.opts.backoff,
    });
    if (config.mqtt.insecure) log.warn("mqtt.insecure is true: the broker's TLS certificate is NOT verified");
    const sink: Publisher = {
      publish: async (topic, payload, options) => {
        this.pendingPublishes++;
        try {
          await session.publish(topic, payload, options);
        } finally {
          this.pendingPublishes--;
        }
      },
    };
    const paramStore = new ParamStore(config, sink, log.child({ module: 'params' }));
    const discovery = new DiscoveryPublisher(config, sink, log.child({ module: 'discovery' }));
    const pipeline = new Pipeline(
      config,
      this.topics,
      journal,
      sink,
      log.child({ module: 'pipeline' }),
      (action) => paramStore.pressParams(action),
      () => session.connected,
      isolation,
    );
    pipeline.restarting(unfinished);
    this.session = session;
    this.pipeline = pipeline;
    this.discovery = discovery;
    const probes = new Probes(config, sink, log.child({ module: 'probes' }), () => session.connected);
    this.probes = probes;
    const updates = new Updates(config, sink, log.child({ module: 'updates' }), () => session.connected);
    this.updates = updates;
    if (updates.enabled) pipeline.observer = updates;

    const guard = new StatusGuard(
      this.topics.status,
      () => session.publish(this.topics.status, 'online', { retain: true }),
      log.child({ module: 'status' }),
    );
    this.statusGuard = guard;
    this.paramStore = paramStore;
    // One guard around every handler: no single message reaches the process (src/agent/dispatch.ts).
    const routes = agentRoutes({
      topics: this.topics,
      haStatus,
      staggered,
      guard,
      pipeline,
      discovery,
      params: paramStore,
    });
    session.onMessage(new Dispatcher(routes, log.child({ module: 'dispatch' })).dispatch);
    session.onClose(() => {
      guard.disarm();
      pipeline.stagger.onDisconnect();
    });
    session.onConnect(async ({ reconnect }) => {
      // First, before any await: requests may already be arriving on this connection.
      pipeline.stagger.onConnect();
      // Also before any await, so it holds only the last run's results the broker never acknowledged.
      if (!reconnect) pipeline.flushOutbox();
      await session.publish(this.topics.status, 'online', { retain: true });
      guard.arm();
      // At start only what changed since the last run; after a lost connection, everything
      // (the broker may have restarted without its retained messages).
      await discovery.sync(!reconnect);
      await paramStore.publishAll();
      await probes.publishAll();
      await updates.publishAll();
      if (unfinished.length > 0) {
        // Handled once connected, so the results cannot be lost with a connection that never opened:
        // scheduled runs resume, anything else was cut short and is reported interrupted (never re-run).
        log.warn(
          { ids: unfinished.map((r) => `${r.id} (${r.status})`) },
          'requests left unfinished by the last stop',
        );
        await pipeline.resume(unfinished.splice(0), (topics, ms) => session.readRetained(topics, ms));
      }
      await this.publishHeartbeat();
    });
    session.start();
    probes.start();
    updates.start();
    this.heartbeatTimer = setInterval(() => {
      // On the heartbeat's beat, connected or not: at most one small write an interval, none when idle.
      // While state_dir is full, one probe a beat: space returning ends the degraded mode by itself.
      if (health.degraded) health.check();
      pipeline.stats.save();
      if (session.connected) void this.publishHeartbeat();
    }, config.heartbeat.interval);
    log.info(
      {
        host: config.host,
        prefix: config.mqtt.prefix,
        actions: Object.keys(config.actions).length,
        execution: config.execution.enabled ? 'enabled' : 'disabled',
      },
      'agent started',
    );
  }

  waitConnected(timeoutMs: number): Promise<void> {
    if (!this.session) throw new Error('agent not started');
    return this.session.waitConnected(timeoutMs);
  }

  /** SIGTERM path: stop intake, let running commands finish within the grace, say `offline`, disconnect. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.statusGuard?.stop();
    clearInterval(this.heartbeatTimer);
    this.discovery?.stop();
    try {
      await this.probes?.stop();
    } catch (err) {
      this.log.error({ err }, 'stopping the probes failed');
    }
    try {
      await this.updates?.stop();
    } catch (err) {
      this.log.error({ err }, 'stopping the os update checks failed');
    }
    try {
      await this.pipeline?.drain(this.config.execution.shutdown_grace);
    } catch (err) {
      this.log.error({ err }, 'draining running commands failed');
    }
    this.pipeline?.stats.save();
    // A param value set within the last second is written now, not lost.
    this.paramStore?.stop();
    try {
      await this.session?.stop({ topic: this.topics.status, payload: 'offline' });
    } catch (err) {
      this.log.error({ err }, 'closing the MQTT session failed');
    }
    this.journal?.close();
    this.log.info('agent stopped');
  }

  private async publishHeartbeat(): Promise<void> {
    const session = this.session;
    const pipeline = this.pipeline;
    if (!session || !pipeline) return;
    try {
      const hb = await readHeartbeat({
        host: this.config.host,
        version: VERSION,
        running: pipeline.runningCount,
        queued: pipeline.queuedCount,
        pendingResults: this.pendingPublishes,
        stats: pipeline.stats.totals(),
        actions: pipeline.stats.actions(),
        diskPath: this.config.state_dir,
        insecure: this.config.mqtt.insecure,
        degraded: this.health?.degraded,
      });
      await session.publish(this.topics.heartbeat, JSON.stringify(hb), { retain: true });
    } catch (err) {
      this.log.warn({ err }, 'could not publish a heartbeat');
    }
  }
}
