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

/** Each entity whose id another entity of this host already takes, at the config key that names it. */
export function checkEntityIds(
  config: EntityInput,
  issue: (path: (string | number)[], message: string) => void,
): void {
  if (!config.discovery.enabled) return;
  // The host only prefixes every id, the same way: any valid one finds the same clashes.
  const host = config.host ?? 'host';
  const msgs = buildDiscovery({ ...config, host, prefix: 'p', discoveryPrefix: 'd', version: '0' });
  const taken = new Map<string, string>();
  const reported = new Set<string>();
  const prefix = uniqueId(host, '');
  for (const { payload } of msgs) {
    const entityId = String(payload.default_entity_id);
    const object = String(payload.unique_id).slice(prefix.length);
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
