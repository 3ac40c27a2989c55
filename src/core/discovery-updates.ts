/**
 * OS updates in Home Assistant (docs/updates.md): an `update` entity read from
 * the retained `P/H/updates` state, and a "Reboot required" binary_sensor read
 * from `P/H/reboot_required`.
 */
import type { UpdatesConfig } from '../config/updates.js';
import type { HostTopics } from './topics.js';

export interface UpdateEntity {
  component: 'update' | 'binary_sensor';
  object: string;
  name: string;
  body: Record<string, unknown>;
}

/**
 * Only HA's keys reach HA: its MQTT update platform validates the rendered JSON
 * (MQTT_JSON_UPDATE_SCHEMA in components/mqtt/update.py) and drops a message that fails, so an extra
 * field of ours can never be the reason. Every key is always present in our state, the strings are
 * never null, and update_percentage is null when idle (HA then reads in_progress as false).
 */
export const UPDATE_VALUE_TEMPLATE =
  "{{ {'installed_version': value_json.installed_version, 'latest_version': value_json.latest_version, 'title': value_json.title, 'release_summary': value_json.release_summary, 'update_percentage': value_json.update_percentage, 'in_progress': value_json.in_progress} | tojson }}";

/** Our fields as attributes: counts, the names, when it was checked, and why a check failed. */
const UPDATE_ATTRIBUTES_TEMPLATE =
  "{{ {'pending': value_json.pending, 'security': value_json.security, 'packages': value_json.packages | map(attribute='name') | list, 'phased': value_json.phased, 'held': value_json.held, 'checked_at': value_json.checked_at, 'error': value_json.error} | tojson }}";

/**
 * Install publishes payload_install to the action's command topic: a plain-text press that runs the
 * action through the normal pipeline (docs/mqtt-api.md). HA's update platform has no command_template,
 * so the press cannot carry ts/ttl like a button's; qos 0 is what keeps it from running late — a broker
 * queues no QoS 0 message for an agent that is offline, so an Install pressed while the host is down
 * is dropped, never run at the next boot (docs/updates.md § Install).
 */
export function updateEntities(updates: UpdatesConfig, t: HostTopics): UpdateEntity[] {
  if (!updates.enabled) return [];
  const install = updates.install_action;
  return [
    {
      component: 'update',
      object: 'os_updates',
      name: 'OS updates',
      body: {
        state_topic: t.updates,
        value_template: UPDATE_VALUE_TEMPLATE,
        json_attributes_topic: t.updates,
        json_attributes_template: UPDATE_ATTRIBUTES_TEMPLATE,
        ...(install
          ? { command_topic: t.cmdAction(install), payload_install: 'PRESS', qos: 0, retain: false }
          : {}),
      },
    },
    {
      component: 'binary_sensor',
      object: 'reboot_required',
      name: 'Reboot required',
      body: {
        state_topic: t.rebootRequired,
        value_template: "{{ 'ON' if value_json.required else 'OFF' }}",
        json_attributes_topic: t.rebootRequired,
        json_attributes_template:
          "{{ {'packages': value_json.packages, 'checked_at': value_json.checked_at} | tojson }}",
        // problem: ON asks for attention (a reboot), OFF is fine — like the disk probe's verdict.
        device_class: 'problem',
      },
    },
  ];
}
