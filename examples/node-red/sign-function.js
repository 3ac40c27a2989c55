// Node-RED function node: sign a homelab-cmd request (canonical form homelab-cmd/v2, docs/security.md).
// Setup tab → Modules: add "crypto" as `crypto`. Set the key in an environment
// variable of the flow (HOMELAB_CMD_KEY), never in the flow itself.
// In:  msg.host, msg.action, msg.params (object), optionally msg.responseTopic and msg.correlationData
// Out: msg.topic, msg.payload, msg.messageExpiryInterval (the rest of msg passes through)
const key = env.get('HOMELAB_CMD_KEY');
const canonical = (v) =>
  Array.isArray(v)
    ? `[${v.map(canonical).join(',')}]`
    : v !== null && typeof v === 'object'
      ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
      : JSON.stringify(v);
const id = `nr-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
const ts = Date.now();
const ttl = 60; // seconds: a request held up longer (a host offline) is dropped, never run late
const params = msg.params || {};
// Echoed in the result, so the flow can pick out its own; signed like every other field.
const transaction = typeof msg._msgid === 'string' ? msg._msgid.slice(0, 64) : null;
// MQTT 5 request/response: msg.responseTopic (and msg.correlationData) go to the mqtt out node as
// they are, and are signed too — the agent answers only where the signature says.
const responseTopic = typeof msg.responseTopic === 'string' && msg.responseTopic !== '' ? msg.responseTopic : null;
const correlation =
  responseTopic !== null && msg.correlationData != null ? Buffer.from(msg.correlationData).toString('hex') : null;
// Everything the agent checks; what this node does not send (a timeout, …) is null.
const fields = {
  action: msg.action,
  cancel: null,
  command: null,
  correlation_data: correlation,
  host: msg.host,
  id,
  params,
  press: false,
  response_topic: responseTopic,
  timeout: null,
  transaction,
  ts,
  ttl,
};
const sig = crypto.createHmac('sha256', key).update(`homelab-cmd/v2\n${canonical(fields)}`).digest('hex');
msg.topic = `homelab/${msg.host}/cmd/${msg.action}`;
msg.payload = { id, params, ts, ttl, sig };
if (transaction !== null) msg.payload.transaction = transaction;
msg.messageExpiryInterval = ttl;
return msg;
