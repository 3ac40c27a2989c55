/**
 * Switches in Home Assistant (docs/home-assistant.md § Command probes and switches): one `switch`
 * entity each, its state from `P/H/switch/NAME`, its commands through the normal request pipeline.
 */
import type { SwitchConfig } from '../config/switches.js';
import type { HostTopics } from './topics.js';

/** Seconds a switch command stays valid, like a button press (docs/home-assistant.md § What a button sends). */
export const SWITCH_TTL_S = 60;

/**
 * HA renders it with `value` = payload_on or payload_off, which are the two action names: a request
 * on `P/H/cmd` naming the action, stamped with ts and ttl exactly as a button press is, so a switch
 * flipped while the host was down is `expired`, never run late (docs/mqtt-api.md § Late requests).
 * Action names are [a-z0-9_] only, so `value` never needs escaping inside the JSON string.
 */
export const SWITCH_COMMAND_TEMPLATE = `{"action": "{{ value }}", "ts": {{ (as_timestamp(now()) * 1000) | int }}, "ttl": ${SWITCH_TTL_S}}`;

/** Fields that change only when something happens: no checked_at (HA would record a row at every check). */
const SWITCH_ATTRIBUTES =
  "{{ {'error': value_json.error, 'last_action': value_json.last_action, 'last_status': value_json.last_status} | tojson }}";

export interface SwitchEntity {
  component: 'switch';
  object: string;
  name: string;
  body: Record<string, unknown>;
}

/** `switch_<name>`: the prefix keeps it apart from the fixed objects and the `run_`, `probe_` … ones. */
export function switchObject(name: string): string {
  return `switch_${name}`;
}

export function switchEntity(name: string, sw: SwitchConfig, label: string, t: HostTopics): SwitchEntity {
  const state = t.switchState(name);
  return {
    component: 'switch',
    object: switchObject(name),
    name: label,
    body: {
      command_topic: t.cmd,
      command_template: SWITCH_COMMAND_TEMPLATE,
      payload_on: sw.turn_on,
      payload_off: sw.turn_off,
      state_topic: state,
      // null while the probe fails renders "None": HA's unknown.
      value_template: '{{ value_json.state }}',
      state_on: 'ON',
      state_off: 'OFF',
      // HA flips the switch only when the state topic says so: the probe confirms, never the click.
      optimistic: false,
      json_attributes_topic: state,
      json_attributes_template: SWITCH_ATTRIBUTES,
      qos: 1,
      retain: false,
      ...(sw.device_class ? { device_class: sw.device_class } : {}),
    },
  };
}
