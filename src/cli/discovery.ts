/** `homelab-cmd discovery`: print the HA discovery a config publishes, or clear it from the broker. */
import { loadConfig } from '../config/load.js';
import { buildDiscovery } from '../core/discovery.js';
import { UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import { connectFirst, refusal } from './client.js';
import { readUpRecord } from './up-record.js';
import { out, parse, type Verb } from './args.js';

export const discoveryVerb: Verb = {
  name: 'discovery',
  usage: `Usage: homelab-cmd discovery [--config FILE] [--clear] [--url U]

Prints every retained discovery message the agent of FILE publishes (topic,
then payload). With --clear, connects to mqtt.url (or --url, repeatable: the first
broker that answers) with the config's credentials and, with --config, the
agent's own client id (stop the agent first), and publishes an empty retained payload on each of those topics,
which removes the entities from Home Assistant. Without --config: the config and
the broker of the homelab-cmd up this user is running.`,
  async run(argv) {
    const { values } = parse(this, argv, {
      config: { type: 'string', short: 'c' },
      clear: { type: 'boolean' },
      url: { type: 'string', short: 'u', multiple: true },
    });
    if (values.help) return (out(this.usage), 0);
    // No --config: the running `up`'s, on the broker it started (up ignores that config's mqtt.url).
    const up = values.config ? undefined : readUpRecord();
    const file = values.config ?? up?.config;
    if (!file)
      throw new UsageError(
        `--config is required (no homelab-cmd up of this user is running)\n\n${this.usage}`,
      );
    const config = loadConfig(file);
    const msgs = buildDiscovery({
      host: config.host,
      prefix: config.mqtt.prefix,
      discoveryPrefix: config.discovery.prefix,
      version: VERSION,
      actions: config.actions,
      probes: config.probes,
      switches: config.switches,
    });
    if (!values.clear) {
      out(msgs.map((m) => `${m.topic}\n${JSON.stringify(m.payload, null, 2)}`).join('\n\n'));
      return 0;
    }
    const m = config.mqtt;
    const { client, url } = await connectFirst({
      url: values.url?.length ? values.url : (up?.url ?? m.url),
      username: m.username,
      password: m.password,
      caFile: m.ca_file,
      certFile: m.cert_file,
      keyFile: m.key_file,
      insecure: m.insecure,
      // With an agent's own config, as that agent: only it may write its discovery topics, and a broker
      // that binds client ids to accounts lets its account in under no other id (docs/security.md §
      // Broker identities). Stop the agent first, or the two take the session from each other.
      ...(values.config !== undefined && { clientId: m.client_id ?? `homelab-cmd-${config.host}` }),
    });
    try {
      for (const m of msgs) await client.publishAsync(m.topic, '', { qos: 1, retain: true });
    } catch (e) {
      throw refusal(e, url, `clear the discovery topics of host ${config.host}`);
    } finally {
      await client.endAsync();
    }
    out(
      `cleared ${msgs.length} discovery topic(s) of host ${config.host}${config.discovery.enabled ? ' — the running agent publishes them again at its next start; set discovery.enabled: false to keep them away' : ''}`,
    );
    return 0;
  },
};
