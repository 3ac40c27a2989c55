/** Every topic of the contract (CONTRACT.md § Topics), built in one place. */
export interface HostTopics {
  cmd: string;
  cmdAction: (action: string) => string;
  cmdWildcard: string;
  result: string;
  resultFor: (id: string) => string;
  status: string;
  heartbeat: string;
  output: (id: string) => string;
  /** `P/H/reply/`: the only MQTT 5 response topics the agent answers start with it (core/reply.ts). */
  replyBase: string;
  /** A probe's retained state (an extension: docs/mqtt-api.md § Probes). */
  probe: (name: string) => string;
}

export function hostTopics(prefix: string, host: string): HostTopics {
  const base = `${prefix}/${host}`;
  return {
    cmd: `${base}/cmd`,
    cmdAction: (action) => `${base}/cmd/${action}`,
    cmdWildcard: `${base}/cmd/+`,
    result: `${base}/result`,
    resultFor: (id) => `${base}/result/${id}`,
    status: `${base}/status`,
    heartbeat: `${base}/heartbeat`,
    output: (id) => `${base}/output/${id}`,
    replyBase: `${base}/reply/`,
    probe: (name) => `${base}/probe/${name}`,
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

/** `P/+/status` etc. — host from a per-host topic. */
export function hostOfTopic(prefix: string, topic: string, leaf: string): string | undefined {
  const head = `${prefix}/`;
  const tail = `/${leaf}`;
  if (!topic.startsWith(head) || !topic.endsWith(tail)) return undefined;
  const host = topic.slice(head.length, topic.length - tail.length);
  return host.includes('/') || host === '' ? undefined : host;
}
