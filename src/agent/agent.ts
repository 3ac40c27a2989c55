/**
 * The agent: wires the MQTT session, the command pipeline, heartbeats and
 * status together. Every part shares one lifecycle (part.ts): started in order, told of every
 * connection in order, stopped in order; a failed stop step is reported to the caller.
 */
import type { Config } from '../config/load.js';
import { brokerUrls } from '../core/failover.js';
import { haStatusTopic, hostTopics, type HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import { DiscoveryPublisher } from './discovery.js';
import { agentRoutes, Dispatcher } from './dispatch.js';
import { groupsRecord } from './groups-record.js';
import { Heartbeats } from './heartbeats.js';
import { ParamStore } from './params.js';
import { Probes } from './probes.js';
import { Switches } from './switches.js';
import { Updates } from './updates.js';
import { Journal } from './journal.js';
import { Pipeline } from './pipeline.js';
import { RunningSensor } from './running.js';
import type { Publisher } from './publisher.js';
import type { AgentPart } from './part.js';
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
  /** Tests: how long a connection attempt waits for its CONNACK, and how far that grows (session.ts). */
  connackWait?: { initialMs: number; maxMs: number };
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
  private journal: Journal | undefined;
  /** In the order they hear of a connection (the pipeline first: before any await). */
  private parts: AgentPart[] = [];
  /** In the order they stop: status and timers first, then the pipeline drains, then the params are saved. */
  private stopOrder: AgentPart[] = [];
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

  /**
   * Opens state, starts connecting; resolves without waiting for the broker (use waitConnected).
   * The process-wide umask is the CLI's (src/cli/serve.ts), set before this is called.
   */
  start(): void {
    const { config, log } = this;
    // Before anything is opened: a run user that should exist and does not stops the start.
    const isolation = isolationAtStart(config, log.child({ module: 'isolation' }), this.opts.demo === true);
    // A full state_dir is a degraded mode, not a crash: start, go online, refuse new requests until space returns.
    removeStaleTemps(config.state_dir, log);
    // eslint-disable-next-line prefer-const -- assigned below, once the session it publishes on exists
    let heartbeats: Heartbeats | undefined;
    const health = new StateHealth(config.state_dir, log.child({ module: 'state' }), () => {
      if (this.session?.connected) void heartbeats?.publish();
    });
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
      connackWait: this.opts.connackWait,
    });
    this.session = session;
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
    const discovery = new DiscoveryPublisher(config, sink, log.child({ module: 'discovery' }), (topics, ms) =>
      session.readRetained(topics, ms),
    );
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
    const probes = new Probes(
      config,
      sink,
      log.child({ module: 'probes' }),
      () => session.connected,
      isolation,
    );
    const switches = new Switches(
      config,
      sink,
      log.child({ module: 'switches' }),
      () => session.connected,
      probes,
    );
    pipeline.finalObserver = (result) => switches.onFinal(result);
    const updates = new Updates(config, sink, log.child({ module: 'updates' }), () => session.connected);
    if (updates.enabled) pipeline.observe(updates);
    const running = new RunningSensor(
      config,
      sink,
      log.child({ module: 'running' }),
      () => session.connected,
    );
    pipeline.observe(running);

    const guard = new StatusGuard(
      this.topics.status,
      () => session.publish(this.topics.status, 'online', { retain: true }),
      log.child({ module: 'status' }),
    );
    heartbeats = new Heartbeats(
      config,
      this.topics,
      session,
      pipeline,
      health,
      () => this.pendingPublishes,
      log,
    );
    // Handled once connected, so the results cannot be lost with a connection that never opened:
    // scheduled runs resume, anything else was cut short and is reported interrupted (never re-run).
    const restarts: AgentPart = {
      name: 'restarts',
      start: () => undefined,
      onConnect: async () => {
        if (unfinished.length === 0) return;
        log.warn(
          { ids: unfinished.map((r) => `${r.id} (${r.status})`) },
          'requests left unfinished by the last stop',
        );
        await pipeline.resume(unfinished.splice(0), (topics, ms) => session.readRetained(topics, ms));
      },
      stop: () => undefined,
    };
    const groups = groupsRecord(config, session, log);
    this.parts = [
      pipeline,
      guard,
      groups,
      discovery,
      paramStore,
      switches,
      probes,
      updates,
      running,
      restarts,
      heartbeats,
    ];
    this.stopOrder = [
      guard,
      heartbeats,
      discovery,
      probes,
      switches,
      updates,
      running,
      pipeline,
      paramStore,
      restarts,
      groups,
    ];

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
      for (const part of this.parts) part.onDisconnect?.();
    });
    session.onConnect(async (info) => {
      // In order, each awaited; the pipeline's runs before any await (part.ts). A connection that closed
      // meanwhile stops here: the next one runs them all again.
      for (const part of this.parts) {
        // Stopping: the parts stop before the session says goodbye, and a part set up after its own stop
        // would publish `online` or discovery into the shutdown (slow-connack.test.ts).
        if (!info.current() || this.stopped) return;
        await part.onConnect(info);
      }
    });
    for (const part of this.parts) part.start();
    session.start();
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

  /**
   * SIGTERM path: stop intake, let running commands finish within the grace, say `offline`, disconnect.
   * Returns the steps that failed (each logged): the CLI exits 1 when there is any.
   */
  async stop(): Promise<string[]> {
    if (this.stopped) return [];
    this.stopped = true;
    const failed: string[] = [];
    const step = async (name: string, fn: () => void | Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        failed.push(name);
        this.log.error({ err, step: name }, `stopping the ${name} failed`);
      }
    };
    for (const part of this.stopOrder) await step(part.name, () => part.stop());
    const session = this.session;
    if (session)
      await step('mqtt session', () => session.stop({ topic: this.topics.status, payload: 'offline' }));
    const journal = this.journal;
    if (journal) await step('journal', () => journal.close());
    this.log.info(failed.length > 0 ? { failed } : {}, 'agent stopped');
    return failed;
  }
}
