/** The long-running verbs' shared tail: run until a signal, then stop cleanly. */
import type { Agent } from '../agent/agent.js';
import type { RunningBroker } from '../broker/broker.js';
import type { Logger } from '../log.js';
import { untilSignal } from './args.js';

/** Runs until SIGTERM/SIGINT, then stops the agent (offline published) and the broker. */
export async function serve(
  log: Logger,
  agent: Agent | undefined,
  broker: RunningBroker | undefined,
): Promise<number> {
  const sig = await untilSignal();
  log.info({ signal: sig }, 'stopping');
  if (agent) await agent.stop();
  if (broker) await broker.close();
  return 0;
}
