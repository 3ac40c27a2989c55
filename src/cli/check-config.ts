import { loadConfig } from '../config/load.js';
import { redactUrl } from '../core/failover.js';
import { err, out, parse, type Verb } from './args.js';
import type { Config } from '../config/load.js';
import { deniedBy } from '../core/deny.js';
import { expandElement, placeholders } from '../core/template.js';
import { UsageError } from '../errors.js';
import { fixedParts, shellLineProblems } from '../config/shell-line.js';
import { entitySlug } from '../core/discovery-names.js';
import { sameNameWarnings } from '../config/entity-ids.js';

export const checkConfigVerb: Verb = {
  name: 'check-config',
  usage: `Usage: homelab-cmd check-config --config FILE

Validates FILE against the schema (docs/configuration.md) and the cross-checks:
placeholders, patterns, buttons, secrets files. Exit 0 when valid; otherwise
prints every problem as "path.to.key: what is wrong — how to fix" and exits 1.`,
  async run(argv) {
    const { values } = parse(this, argv, { config: { type: 'string', short: 'c' } });
    if (values.help) return (out(this.usage), 0);
    if (!values.config) throw new UsageError(`--config is required\n\n${this.usage}`);
    const config = loadConfig(values.config);
    for (const w of configWarnings(config)) err(`warning: ${w}`);
    const actions = Object.keys(config.actions);
    const probes = Object.keys(config.probes);
    const switches = Object.keys(config.switches);
    out(
      `${values.config}: OK — host ${config.host}, ${actions.length} action(s)${actions.length ? `: ${actions.join(', ')}` : ''}${probes.length ? `, ${probes.length} probe(s): ${probes.join(', ')}` : ''}${switches.length ? `, ${switches.length} switch(es): ${switches.join(', ')}` : ''}; execution ${config.execution.enabled ? 'enabled' : 'disabled (set execution.enabled: true to run actions)'}${Array.isArray(config.mqtt.url) && config.mqtt.url.length > 1 ? `; brokers in failover order: ${config.mqtt.url.map(redactUrl).join(', ')}` : ''}${config.broker.cluster ? `; embedded broker clustered over Redis at ${redactUrl(config.broker.cluster.redis)}` : ''}`,
    );
    return 0;
  },
};

/**
 * Valid, but surely not meant: an action whose fixed command the deny-list refuses can never run; an
 * argv element that may be a shell line (a glob, a whole command in one element: shell-line.ts).
 */
export function configWarnings(config: Config, only?: string): string[] {
  const out: string[] = [];
  const seen = hostAsSeenByHa(config.host);
  if (only === undefined && config.discovery.enabled && seen !== undefined)
    out.push(
      `host: "${config.host}" shows in Home Assistant as ${seen.slug} (sensor.${seen.slug}_uptime …), as a host "${seen.plain}" would: two such hosts would share their entity ids — prefer host: ${seen.plain}`,
    );
  if (only === undefined) out.push(...sameNameWarnings(config));
  for (const [name, action] of Object.entries(config.actions)) {
    if (only !== undefined && name !== only) continue;
    for (const [path, argv] of [
      ...(action.argv ? [['argv', action.argv] as const] : []),
      ...(action.steps ?? []).map((s, i) => [`steps.${i}`, s] as const),
      ...(action.rollback ?? []).map((s, i) => [`rollback.${i}`, s] as const),
      ...(action.health?.argv ? [['health.argv', action.health.argv] as const] : []),
    ])
      for (const p of shellLineProblems(fixedParts(argv)))
        out.push(`actions.${name}.${path}.${p.index}: ${p.message}`);
    for (const argv of [
      ...(action.argv ? [action.argv] : (action.steps ?? [])),
      ...(action.rollback ?? []),
      ...(action.health?.argv ? [action.health.argv] : []),
    ]) {
      // Judge the fixed parts only: a param is filled with a harmless word.
      const fixed = argv.map((e) =>
        expandElement(e, Object.fromEntries(placeholders(e).map((p) => [p, 'x']))),
      );
      const rule = deniedBy(fixed, config.security.deny);
      if (rule)
        out.push(
          `actions.${name}: its command matches the deny-list (${rule}) — it can never run; change it or remove it`,
        );
    }
  }
  return out;
}

/**
 * A host id HA slugifies to the id of another valid host ("nas-" and "nas", "a--b" and "a-b"): valid by
 * the contract, so a warning, with the plain form to prefer (docs/home-assistant.md § Entity ids).
 */
function hostAsSeenByHa(host: string): { slug: string; plain: string } | undefined {
  const slug = entitySlug(host);
  if (slug === host.replaceAll('-', '_')) return undefined;
  const plain = host.replace(/[-_]+$/, '').replace(/([-_])[-_]+/g, '$1');
  return { slug, plain };
}
