/**
 * How entities are named and identified in Home Assistant: unique ids, entity-id slugs, and display
 * names (docs/home-assistant.md). Its own module because these rules bind every entity, and code
 * outside discovery (the broker's ACL identities) must form the same slugs.
 */

/**
 * `homelab_cmd_H_<object>`; objects of actions are prefixed so they never meet the fixed ones, and a
 * param's object joins action and param with "-", which neither name may contain, so no two collide.
 */
export function uniqueId(host: string, object: string): string {
  return `homelab_cmd_${host}_${object}`;
}

/**
 * The object part of an entity id as HA would slugify it (util/__init__.py slugify; valid_entity_id
 * refuses "__" and a leading or trailing "_"): "-" is "_", a run of "_" is one, none at either end.
 * So host `nas-` gives `sensor.nas_uptime`, what HA would make of it anyway (docs/home-assistant.md).
 */
export function entitySlug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** "restart_dns" → "Restart dns", "a__b" → "A b": a run of separators is one space. */
export function humanize(name: string): string {
  const s = name.replace(/[_\s]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * HA shows "<device> <entity>", and the device is named after the host: a name that starts with the
 * host ("pihole-1 Fail" on pihole-1) would read "pihole-1 pihole-1 Fail", so the host is cut off.
 */
export function entityName(host: string, name: string): string {
  const lower = name.toLowerCase();
  const h = host.toLowerCase();
  if (!lower.startsWith(h)) return name;
  const rest = name.slice(h.length);
  // Only a whole word: "pihole-10 …" on host pihole-1 keeps its name.
  if (rest !== '' && !/^[\s:_-]/.test(rest)) return name;
  const stripped = rest.replace(/^[\s:_-]+/, '');
  return stripped === '' ? name : stripped.charAt(0).toUpperCase() + stripped.slice(1);
}
