/**
 * Names that Home Assistant would make one entity id of. HA slugifies an entity id ("-" becomes "_", a
 * run of "_" one, none at either end: core/discovery-names.ts), so actions `a__b` and `a_b`, or params
 * `x.y_z` and `x_y.z`, would ask for the same id; HA then names one of them `…_2`, and an automation
 * written for one acts on the other (docs/home-assistant.md § Entity ids). The unique ids differ, so
 * nothing else notices: the config is refused, naming both and the fix.
 */
import { buildDiscovery, type DiscoveryInput } from '../core/discovery.js';
import { uniqueId } from '../core/discovery-names.js';

type EntityInput = Pick<DiscoveryInput, 'actions' | 'probes' | 'switches' | 'updates'> & {
  host?: string | undefined;
  discovery: { enabled: boolean };
};

interface Entity {
  /** The object of its unique id (`run_<action>`, `probe_<name>`, … or a fixed one). */
  object: string;
  entityId: string;
  domain: string;
  name: string;
}

/** This host's entities as discovery announces them; none with discovery off. */
function entitiesOf(config: EntityInput): { host: string; entities: Entity[] } {
  // The host only prefixes every id and name, the same way: any valid one finds the same clashes.
  const host = config.host ?? 'host';
  if (!config.discovery.enabled) return { host, entities: [] };
  const prefix = uniqueId(host, '');
  const msgs = buildDiscovery({ ...config, host, prefix: 'p', discoveryPrefix: 'd', version: '0' });
  const entities = msgs.map(({ payload }) => {
    const entityId = String(payload.default_entity_id);
    return {
      object: String(payload.unique_id).slice(prefix.length),
      entityId,
      domain: entityId.split('.')[0] ?? '',
      name: String(payload.name),
    };
  });
  return { host, entities };
}

/** Each entity whose id another entity of this host already takes, at the config key that names it. */
export function checkEntityIds(
  config: EntityInput,
  issue: (path: (string | number)[], message: string) => void,
): void {
  const taken = new Map<string, string>();
  const reported = new Set<string>();
  for (const { entityId, object } of entitiesOf(config).entities) {
    const first = taken.get(entityId);
    if (first === undefined) {
      taken.set(entityId, object);
      continue;
    }
    const [path, what] = configKeyOf(object);
    const [, other] = configKeyOf(first);
    // An action's button and its figures sensor clash together: one refusal per pair of names.
    if (reported.has(`${what}|${other}`)) continue;
    reported.add(`${what}|${other}`);
    issue(
      path,
      `${what} would get the Home Assistant entity id ${entityId}, which ${other} already gets: HA writes "-" as "_" and a run of "_" as one, so it would name one of them ${entityId}_2 and automations could act on the wrong one — rename one of the two so they differ in more than "_" and "-"`,
    );
  }
}

/** The config key behind an entity's object (core/discovery*.ts name them), and how to call it. */
function configKeyOf(object: string): [(string | number)[], string] {
  const m = /^(run|stats|param|probe|switch)_(.+)$/.exec(object);
  const [, kind, rest = ''] = m ?? [];
  const [name = rest, sub] = rest.split('-');
  if (kind === 'param' && sub !== undefined)
    return [['actions', name, 'params', sub], `param ${sub} of action ${name}`];
  if (kind === 'probe') return [['probes', name], `probe ${name}`];
  if (kind === 'switch') return [['switches', name], `switch ${name}`];
  if (kind === 'run' || kind === 'stats') return [['actions', name], `action ${name}`];
  // The fixed entities' objects start with none of the prefixes above, and never clash with each other.
  return [[], `the entity ${object}`];
}

/**
 * Entities of this host that HA would show under the same name ("vm Uptime" for the heartbeat's Uptime
 * sensor and a button named Uptime): valid, and each has its own id, but a dashboard or a voice
 * assistant cannot tell them apart. A check-config warning per configured name that repeats another.
 */
export function sameNameWarnings(config: EntityInput): string[] {
  const { host, entities } = entitiesOf(config);
  const seen = new Map<string, Entity>();
  const warned = new Set<string>();
  const out: string[] = [];
  const describe = (e: Entity, name: string): [(string | number)[], string] => {
    const [path, what] = configKeyOf(e.object);
    return path.length > 0 ? [path, `the ${e.domain} of ${what}`] : [path, `the ${name} ${e.domain}`];
  };
  for (const me of entities) {
    const { name } = me;
    const first = seen.get(name.toLowerCase());
    if (first === undefined) {
      seen.set(name.toLowerCase(), me);
      continue;
    }
    // Name the configured one: a fixed entity's name is not the user's to change.
    const [mine, theirs] = [describe(me, name), describe(first, name)];
    const [[at, what], [otherAt, other]] = mine[0].length > 0 ? [mine, theirs] : [theirs, mine];
    // A probe's status and latency entities repeat the same pair of names: one warning per pair.
    const pair = `${at.join('.')}|${otherAt.join('.') || other}`;
    if (at.length === 0 || warned.has(pair)) continue;
    warned.add(pair);
    out.push(
      `${at.join('.')}: ${what} is shown in Home Assistant as "${host} ${name}", like ${other}: a dashboard or a voice assistant cannot tell them apart — give it another name (its name: key)`,
    );
  }
  return out;
}
