/**
 * Reboots in Home Assistant (docs/home-assistant.md § Reboots): a "Last reboot" sensor read from the
 * retained `P/H/reboot` — the result of the host's latest reboot action — when any action reboots the
 * host. No availability: while the host is down HA keeps showing `rebooting` and since when.
 * (The Reboot button itself is the action's button: discovery.ts.)
 */
import type { ActionConfig } from '../config/schema.js';
import type { HostTopics } from './topics.js';

/** Characters kept of the error: discovery.ts's ATTRIBUTE_TEXT_HEAD (not imported: discovery.ts imports this). */
const ATTRIBUTE_TEXT_HEAD = 200;

/** Bounded like the last-result sensor's: HA's recorder keeps attributes under 16 KB. */
export const LAST_REBOOT_ATTRIBUTES =
  '{{ {' +
  [
    "'id': (value_json.id | string)[:64]",
    "'action': value_json.action",
    "'error_code': value_json.error_code | default(none)",
    `'error': (value_json.error | default(''))[:${ATTRIBUTE_TEXT_HEAD}]`,
    "'executed_at': value_json.executed_at | default(none)",
    "'completed_at': value_json.completed_at | default(none)",
    "'down_at': (value_json.reboot | default({})).down_at | default(none)",
    "'back_at': (value_json.reboot | default({})).back_at | default(none)",
    "'downtime_ms': (value_json.reboot | default({})).downtime_ms | default(none)",
    "'boot_id_before': (value_json.reboot | default({})).boot_id_before | default(none)",
    "'boot_id_after': (value_json.reboot | default({})).boot_id_after | default(none)",
    "'health_passed': (value_json.health | default({})).passed | default(none)",
  ].join(', ') +
  '} | tojson }}';

export interface RebootEntity {
  component: 'sensor';
  object: string;
  name: string;
  body: Record<string, unknown>;
}

export function rebootEntities(
  actions: Readonly<Record<string, ActionConfig>>,
  t: HostTopics,
): RebootEntity[] {
  if (!Object.values(actions).some((a) => a.reboot)) return [];
  return [
    {
      component: 'sensor',
      object: 'last_reboot',
      name: 'Last reboot',
      body: {
        state_topic: t.reboot,
        // rebooting (not final), succeeded or failed: ≤ 255 characters.
        value_template: '{{ value_json.status }}',
        json_attributes_topic: t.reboot,
        json_attributes_template: LAST_REBOOT_ATTRIBUTES,
        icon: 'mdi:restart',
      },
    },
  ];
}
