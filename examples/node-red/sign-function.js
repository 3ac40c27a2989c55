// Node-RED function node: sign a homelab-cmd request (docs/security.md).
// Setup tab → Modules: add "crypto" as `crypto`. Set the key in an environment
// variable of the flow (HOMELAB_CMD_KEY), never in the flow itself.
// In:  msg.host, msg.action, msg.params (object)   Out: msg.topic, msg.payload
const key = env.get('HOMELAB_CMD_KEY');
const canonical = (v) =>
  Array.isArray(v)
    ? `[${v.map(canonical).join(',')}]`
    : v !== null && typeof v === 'object'
      ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
      : JSON.stringify(v);
const id = `nr-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
const ts = Date.now();
const params = msg.params || {};
const text = ['homelab-cmd/v1', msg.host, msg.action, id, String(ts), canonical(params)].join('\n');
const sig = crypto.createHmac('sha256', key).update(text).digest('hex');
msg.topic = `homelab/${msg.host}/cmd/${msg.action}`;
msg.payload = { id, params, ts, sig, transaction: msg._msgid };
return msg;
