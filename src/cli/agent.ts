/** `homelab-cmd agent`: the agent alone. It loads no broker code: an agent on a Pi stays small. */
import { Agent } from '../agent/agent.js';
import { loadConfig } from '../config/load.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { out, parse, type Verb } from './args.js';
import { serve, setUpAgentProcess } from './serve.js';

export const agentVerb: Verb = {
  name: 'agent',
  usage: `Usage: homelab-cmd agent --config FILE

Runs this host's agent against the broker at mqtt.url. It keeps retrying
(with backoff) while the broker is unreachable. SIGTERM or SIGINT drains
running commands (execution.shutdown_grace), publishes offline and exits 0 (1 when a stop step failed).`,
  async run(argv) {
    const { values } = parse(this, argv, { config: { type: 'string', short: 'c' } });
    if (values.help) return (out(this.usage), 0);
    if (!values.config) throw new UsageError(`--config is required\n\n${this.usage}`);
    const config = loadConfig(values.config);
    const log = createLogger();
    const agent = new Agent(config, log);
    setUpAgentProcess();
    agent.start();
    return serve(log, agent, undefined);
  },
};
