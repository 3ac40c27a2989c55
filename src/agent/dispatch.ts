/**
 * Every message the agent receives goes through one table of topic matchers → handlers, each run inside
 * one guard: an unexpected error in one message is logged and answered (`invalid_request` on a command
 * topic) or dropped, and never reaches the process (docs/security.md § What the agent withstands).
 */
import { commandTopicAction, paramSetOf, type HostTopics } from '../core/topics.js';
import type { Logger } from '../log.js';
import type { DiscoveryPublisher } from './discovery.js';
import type { ParamStore } from './params.js';
import type { Pipeline } from './pipeline.js';
import type { Incoming } from './session.js';
import type { StatusGuard } from './status-guard.js';

export interface Route {
  /** For the log. */
  name: string;
  /** Whether the handler is offered this topic; routes are tried in table order. */
  matches(topic: string): boolean;
  /** Handles the message; false lets the next matching route try it. */
  handle(msg: Incoming): boolean;
  /** Answers a message whose handler threw. Without it the message is dropped (and logged). */
  refuse?(msg: Incoming, error: string): void;
}

/** Topics and messages are the sender's: at most this much of them reaches a log line. */
const LOG_TOPIC_MAX = 200;

export class Dispatcher {
  constructor(
    private readonly routes: readonly Route[],
    private readonly log: Logger,
  ) {}

  /** Never throws. */
  readonly dispatch = (msg: Incoming): void => {
    for (const route of this.routes) {
      try {
        if (route.matches(msg.topic) && route.handle(msg)) return;
      } catch (err) {
        this.failed(route, msg, err);
        return;
      }
    }
    this.log.debug({ topic: clip(msg.topic) }, 'a message on no topic the agent handles; dropped');
  };

  private failed(route: Route, msg: Incoming, err: unknown): void {
    const what = clip(err instanceof Error ? err.message : String(err));
    this.log.error(
      { err, route: route.name, topic: clip(msg.topic), bytes: msg.payload.byteLength },
      route.refuse
        ? 'handling a message failed unexpectedly; it is answered invalid_request'
        : 'handling a message failed unexpectedly; it is dropped',
    );
    if (!route.refuse) return;
    try {
      route.refuse(
        msg,
        `the agent could not handle this message (${what}); nothing was run — check the request against docs/mqtt-api.md, and report it if it is valid`,
      );
    } catch (again) {
      this.log.error(
        { err: again, route: route.name },
        'could not answer the failed message either; dropped',
      );
    }
  }
}

function clip(s: string): string {
  return s.length > LOG_TOPIC_MAX ? `${s.slice(0, LOG_TOPIC_MAX)}…` : s;
}

export interface AgentParts {
  topics: HostTopics;
  /** Home Assistant's birth topic (`<discovery prefix>/status`). */
  haStatus: string;
  /** Whether an action has `stagger`: then the fleet topics and every host's status come in too. */
  staggered: boolean;
  guard: StatusGuard;
  pipeline: Pipeline;
  discovery: DiscoveryPublisher;
  params: ParamStore;
}

/** The agent's table, in its precedence: our status first, commands, HA's birth, the fleet, param sets. */
export function agentRoutes(p: AgentParts): Route[] {
  return [
    {
      // Our own status: P/H/status alone, or within the fleet's P/+/status when staggered.
      name: 'status',
      matches: (topic) => topic === p.topics.status,
      handle: ({ topic, payload }) => p.guard.onMessage(topic, payload) && !p.staggered,
    },
    {
      name: 'command',
      matches: (topic) => commandTopicAction(p.topics, topic) !== undefined,
      handle: ({ topic, payload, packet }) => {
        p.pipeline.handle(commandTopicAction(p.topics, topic)?.action, payload, packet);
        return true;
      },
      refuse: ({ topic, packet }, error) =>
        p.pipeline.refuse(commandTopicAction(p.topics, topic)?.action, packet, error),
    },
    {
      name: 'ha-birth',
      matches: (topic) => topic === p.haStatus,
      handle: ({ payload }) => {
        if (payload.toString() === 'online') p.discovery.onBirth();
        return true;
      },
    },
    {
      name: 'fleet',
      matches: () => p.staggered,
      handle: ({ topic, payload }) => p.pipeline.onFleetMessage(topic, payload),
    },
    {
      name: 'param-set',
      matches: (topic) => paramSetOf(p.topics, topic) !== undefined,
      handle: ({ topic, payload, packet }) => p.params.handleSet(topic, payload, packet.retain === true),
    },
  ];
}
