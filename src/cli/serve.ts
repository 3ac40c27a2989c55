/** The long-running verbs' shared tail: run until a signal, then stop cleanly. */
import type { Agent } from '../agent/agent.js';
import type { RunningBroker } from '../broker/broker.js';
import type { Logger } from '../log.js';
import { untilSignal } from './args.js';

/**
 * Process-wide setup for the verbs that run an agent, before it starts: children inherit the umask, so
 * files a command creates are private to its user (docs/security.md § Notes). It is the process's, not the
 * agent's: set here where the process is set up, never inside Agent.start.
 */
export function setUpAgentProcess(): void {
  process.umask(0o077);
}

/** Runs until SIGTERM/SIGINT, then stops the agent (offline published) and the broker; 1 when a stop step failed. */
export async function serve(
  log: Logger,
  agent: Agent | undefined,
  broker: RunningBroker | undefined,
): Promise<number> {
  const sig = await untilSignal();
  log.info({ signal: sig }, 'stopping');
  const failed = agent ? await agent.stop() : [];
  if (broker) await broker.close();
  return failed.length > 0 ? 1 : 0;
}
