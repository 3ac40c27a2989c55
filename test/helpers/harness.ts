import { randomUUID } from 'node:crypto';
import type { Agent } from '../../src/agent/agent.js';
import { resultSchema } from '../../src/core/formats.js';
import { isFinal, type Result } from '../../src/core/result.js';
import { startBroker, type BrokerOptions, type RunningBroker } from '../../src/broker/broker.js';
import { silentLogger } from '../../src/log.js';
import { startAgent } from './agent.js';
import { tempDir, testPath } from './fixtures.js';
import { TestClient } from './mqtt.js';

/** Every result the agent publishes must match the contract's schema exactly (core/formats.ts): parsed strictly, never cast. */
const asResult = (text: string): Result => resultSchema.parse(JSON.parse(text));

/** One embedded broker, a controller client watching every result, and agents made per test. */
/** The embedded broker on a free port, anonymous, default prefixes: what most tests talk to; `extra` adds to it. */
export function startTestBroker(extra: Partial<BrokerOptions> = {}): Promise<RunningBroker> {
  return startBroker({
    host: '127.0.0.1',
    port: 0,
    users: [],
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    log: silentLogger(),
    ...extra,
  });
}

export class Harness {
  broker!: RunningBroker;
  ctl!: TestClient;
  url = '';
  private agents: Agent[] = [];
  private readonly stateDirs = new Map<string, string>();

  async start(): Promise<void> {
    this.broker = await startTestBroker();
    this.url = `mqtt://127.0.0.1:${this.broker.port}`;
    this.ctl = await TestClient.connect(this.url);
    await this.ctl.sub('homelab/+/result/#', 'homelab/+/result');
  }

  async stop(): Promise<void> {
    for (const a of this.agents.splice(0)) await a.stop();
    await this.ctl.end();
    await this.broker.close();
  }

  /** An agent with execution enabled, a fresh state dir, and `binDir` first on its PATH. */
  async agent(
    host: string,
    actions: Record<string, unknown>,
    opts: {
      binDir?: string;
      stateDir?: string;
      execution?: Record<string, unknown>;
      extra?: Record<string, unknown>;
    } = {},
  ): Promise<{ agent: Agent; stateDir: string }> {
    const stateDir = opts.stateDir ?? `${tempDir()}/state`;
    const { agent } = await startAgent({
      host,
      state_dir: stateDir,
      mqtt: { url: this.url },
      execution: {
        enabled: true,
        path: opts.binDir ? testPath(opts.binDir) : '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
        ...opts.execution,
      },
      actions,
      ...opts.extra,
    });
    this.agents.push(agent);
    this.stateDirs.set(host, stateDir);
    return { agent, stateDir };
  }

  stateDirOf(host: string): string {
    const d = this.stateDirs.get(host);
    if (!d) throw new Error(`no agent ${host} was started`);
    return d;
  }

  async stopAgent(agent: Agent): Promise<void> {
    this.agents = this.agents.filter((a) => a !== agent);
    await agent.stop();
  }

  /** Publishes a request object and resolves with its final result. */
  async request(
    host: string,
    body: Record<string, unknown>,
    opts: { topic?: string; ms?: number; retain?: boolean } = {},
  ): Promise<Result> {
    const given = body.id ?? body.action_id;
    const id = given === undefined ? randomUUID() : String(given);
    const full = given === undefined ? { id, ...body } : body;
    const topic =
      opts.topic ?? (full.action ? `homelab/${host}/cmd/${String(full.action)}` : `homelab/${host}/cmd`);
    const done = this.finalFor(host, id, opts.ms);
    await this.ctl.pub(topic, JSON.stringify(full), { retain: opts.retain ?? false });
    return done;
  }

  /** Presses (plain payload on cmd/ACTION) and resolves with the final result on P/H/result. */
  async press(host: string, action: string, payload = '', ms = 10_000): Promise<Result> {
    const before = this.ctl.messages.length;
    await this.ctl.pub(`homelab/${host}/cmd/${action}`, payload);
    const m = await this.ctl.wait(
      (x) =>
        this.ctl.messages.indexOf(x) >= before &&
        x.topic === `homelab/${host}/result` &&
        x.text !== '' &&
        isFinal(asResult(x.text).status),
      ms,
      `a final result of ${action} on ${host}`,
    );
    return asResult(m.text);
  }

  /** The next final result on P/H/result/ID (one already seen does not count). */
  finalFor(host: string, id: string, ms = 10_000): Promise<Result> {
    const topic = `homelab/${host}/result/${id}`;
    return this.ctl
      .next(
        (m) => m.topic === topic && m.text !== '' && isFinal(asResult(m.text).status),
        ms,
        `a final result on ${topic}`,
      )
      .then((m) => asResult(m.text));
  }

  /** Every result object seen on P/H/result/ID, in order. */
  seen(host: string, id: string): Result[] {
    return this.ctl
      .on(`homelab/${host}/result/${id}`)
      .filter((m) => m.text !== '')
      .map((m) => asResult(m.text));
  }
}
