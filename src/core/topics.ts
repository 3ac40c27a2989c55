/**
 * Every topic of the MQTT API (docs/mqtt-api.md § Topics), built, parsed and turned into ACL
 * filters in one place; the fleet's own topics are in fleet-topics.ts. The subscriptions of the
 * agent, its parsers, the embedded broker's ACL (broker/acl.ts) and the Mosquitto acl_file
 * (cli/acl.ts) all come from here, so a topic's shape cannot drift between them.
 *
 * `hostTopics(P, '+')` gives the same shapes as filters over every host (`P/+/status`).
 */
import { fleetReadFilter, fleetWriteFilters } from './fleet-topics.js';

export interface HostTopics {
  cmd: string;
  cmdAction: (action: string) => string;
  cmdWildcard: string;
  /** `P/H/cmd/#`: every command topic of H. */
  cmdFilter: string;
  result: string;
  resultFor: (id: string) => string;
  status: string;
  heartbeat: string;
  output: (id: string) => string;
  /** `P/H/reply/`: the only MQTT 5 response topics the agent answers start with it (core/reply.ts). */
  replyBase: string;
  /** A probe's retained state (an extension: docs/mqtt-api.md § Probes). */
  probe: (name: string) => string;
  /** `P/H/switch/NAME`: a switch's state, retained (an extension: docs/mqtt-api.md § Switches). */
  switchState: (name: string) => string;
  /** `P/H/updates`: pending OS package updates, retained (docs/updates.md). */
  updates: string;
  /** `P/H/running`: what runs now, retained — the Running sensor (docs/mqtt-api.md § Running). */
  running: string;
  /** `P/H/reboot_required`: whether the host asks for a reboot, retained (docs/updates.md). */
  rebootRequired: string;
  /** `P/H/reboot`: the result of this host's latest reboot action, retained (docs/mqtt-api.md § Reboots). */
  reboot: string;
  /** `P/H/param/ACTION/PARAM`: a param's current value (docs/mqtt-api.md § Params in Home Assistant). */
  param: (action: string, param: string) => string;
  /** `P/H/param/+/+/set`: HA's commands for those values. */
  paramSetFilter: string;
  /** `P/H/param/#`: the values and their set topics. */
  paramFilter: string;
  /** `P/H/#`: everything of H. */
  all: string;
}

export function hostTopics(prefix: string, host: string): HostTopics {
  const base = `${prefix}/${host}`;
  return {
    cmd: `${base}/cmd`,
    cmdAction: (action) => `${base}/cmd/${action}`,
    cmdWildcard: `${base}/cmd/+`,
    cmdFilter: `${base}/cmd/#`,
    result: `${base}/result`,
    resultFor: (id) => `${base}/result/${id}`,
    status: `${base}/status`,
    heartbeat: `${base}/heartbeat`,
    output: (id) => `${base}/output/${id}`,
    replyBase: `${base}/reply/`,
    probe: (name) => `${base}/probe/${name}`,
    switchState: (name) => `${base}/switch/${name}`,
    updates: `${base}/updates`,
    running: `${base}/running`,
    rebootRequired: `${base}/reboot_required`,
    reboot: `${base}/reboot`,
    param: (action, param) => `${base}/param/${action}/${param}`,
    paramSetFilter: `${base}/param/+/+/set`,
    paramFilter: `${base}/param/#`,
    all: `${base}/#`,
  };
}

/** `P/H/cmd` → no action; `P/H/cmd/ACTION` → ACTION; anything else → not a command topic. */
export function commandTopicAction(
  topics: HostTopics,
  topic: string,
): { action: string | undefined } | undefined {
  if (topic === topics.cmd) return { action: undefined };
  const head = `${topics.cmd}/`;
  if (topic.startsWith(head) && !topic.slice(head.length).includes('/'))
    return { action: topic.slice(head.length) };
  return undefined;
}

/**
 * `P/H/param/ACTION/PARAM/set` → its action and param; undefined for any other topic, including
 * one with more levels (names never contain "/").
 */
export function paramSetOf(topics: HostTopics, topic: string): { action: string; param: string } | undefined {
  const head = topics.param('', '').slice(0, -1); // `P/H/param/`
  if (!topic.startsWith(head) || !topic.endsWith('/set')) return undefined;
  const [action, param, ...rest] = topic.slice(head.length, -'/set'.length).split('/');
  if (!action || !param || rest.length > 0) return undefined;
  return { action, param };
}

/** `P/+/status` etc. — host from a per-host topic. */
export function hostOfTopic(prefix: string, topic: string, leaf: string): string | undefined {
  const head = `${prefix}/`;
  const tail = `/${leaf}`;
  if (!topic.startsWith(head) || !topic.endsWith(tail)) return undefined;
  const host = topic.slice(head.length, topic.length - tail.length);
  return host.includes('/') || host === '' ? undefined : host;
}

/** Home Assistant's birth topic: `online` makes the agent republish its discovery. */
export const haStatusTopic = (discoveryPrefix: string) => `${discoveryPrefix}/status`;

/** `<discovery>/<component>/<host>/<object>/config` (docs/mqtt-api.md § Home Assistant discovery). */
export const discoveryTopic = (discoveryPrefix: string, component: string, host: string, object: string) =>
  `${discoveryPrefix}/${component}/${host}/${object}/config`;

/** Every discovery topic of `host`: `<discovery>/+/<host>/#`. */
export const discoveryHostFilter = (discoveryPrefix: string, host: string) =>
  `${discoveryPrefix}/+/${host}/#`;

/** Where a sender's identity matters: commands and param changes of `host` (default: any host). */
export function commandFilters(prefix: string, host = '+'): string[] {
  const t = hostTopics(prefix, host);
  return [t.cmdFilter, t.paramSetFilter];
}

/**
 * What agent H reads (docs/mqtt-api.md § Broker roles): its commands and params, every host's status
 * (its stagger peers), the fleet, and HA's birth message.
 */
export function agentReadFilters(prefix: string, discoveryPrefix: string, host: string): string[] {
  const t = hostTopics(prefix, host);
  return [
    t.cmdFilter,
    t.paramFilter,
    hostTopics(prefix, '+').status,
    fleetReadFilter(prefix),
    haStatusTopic(discoveryPrefix),
  ];
}

/**
 * Every topic agent H publishes to, one filter per "from agent" row of docs/mqtt-api.md § Topics —
 * for an ACL that cannot grant `P/H/#` minus `P/H/cmd/#` (Mosquitto's acl_file). Request ids and
 * action, param and probe names never contain "/", so "+" is exact. Never a command or a param set.
 */
export function agentPublishFilters(prefix: string, discoveryPrefix: string, host: string): string[] {
  const t = hostTopics(prefix, host);
  return [
    t.status,
    t.heartbeat,
    t.result,
    t.resultFor('+'),
    t.output('+'),
    t.param('+', '+'),
    t.probe('+'),
    t.switchState('+'),
    t.running,
    t.updates,
    t.rebootRequired,
    t.reboot,
    // MQTT 5 replies, only under its own P/H/reply/ (docs/security.md § Answers that cannot be faked).
    `${t.replyBase}#`,
    // Fleet coordination: only the fleet topics ending in its own host id (docs/stagger.md § Topics).
    ...fleetWriteFilters(prefix, host),
    discoveryHostFilter(discoveryPrefix, host),
  ];
}
