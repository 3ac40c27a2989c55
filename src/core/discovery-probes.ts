/**
 * Probes in Home Assistant: per probe a binary_sensor for its verdict, and a
 * sensor for its number where it has one (a latency, a disk's used share).
 * Both read the retained `P/H/probe/NAME` state (docs/mqtt-api.md § Probes).
 */
import type { ProbeConfig, ProbeType } from '../config/probes.js';
import { commandProbeEntity } from './discovery-commands.js';

/** The built-in kinds; a command probe's entity is its own (discovery-commands.ts). */
type BuiltIn = Exclude<ProbeType, 'command'>;

export interface ProbeEntity {
  component: 'binary_sensor' | 'sensor';
  object: string;
  name: string;
  body: Record<string, unknown>;
}

// connectivity/running: ON means fine. problem: ON means something is wrong, so the disk's verdict is inverted.
const BINARY_CLASS: Readonly<Record<BuiltIn, 'connectivity' | 'running' | 'problem'>> = {
  http: 'connectivity',
  tcp: 'connectivity',
  ping: 'connectivity',
  service: 'running',
  process: 'running',
  disk: 'problem',
};

/**
 * Attributes are the fields that change rarely: with the latency or `checked_at` among them, HA would
 * record a new state row at every check. `value` is the state word (service) or the count (process).
 */
const ATTRIBUTES: Readonly<Record<BuiltIn, Record<string, string>>> = {
  http: { error: 'error', status_code: 'status_code' },
  tcp: { error: 'error' },
  ping: { error: 'error', loss_percent: 'loss_percent' },
  // Not `state`: HA drops an attribute named state (docs/home-assistant.md § Probes).
  service: { error: 'error', service_state: 'value' },
  process: { error: 'error', count: 'value' },
  disk: { error: 'error' },
};

/**
 * `probe_<name>` and `probe_<name>-<reading>`: a probe name cannot contain "-", so the two never meet each
 * other, another probe's, or the objects of actions (`run_…`, `param_…`) and the fixed ones.
 */
export function probeObject(name: string, reading?: 'latency' | 'used'): string {
  return reading ? `probe_${name}-${reading}` : `probe_${name}`;
}

export function probeEntities(
  name: string,
  probe: ProbeConfig,
  label: string,
  stateTopic: string,
): ProbeEntity[] {
  if (probe.type === 'command') return [commandProbeEntity(probeObject(name), probe, label, stateTopic)];
  const deviceClass = BINARY_CLASS[probe.type];
  const attributes = Object.entries(ATTRIBUTES[probe.type]).map(
    ([key, field]) => `'${key}': value_json.${field}`,
  );
  const out: ProbeEntity[] = [
    {
      component: 'binary_sensor',
      object: probeObject(name),
      name: label,
      body: {
        state_topic: stateTopic,
        value_template:
          deviceClass === 'problem'
            ? "{{ 'OFF' if value_json.ok else 'ON' }}"
            : "{{ 'ON' if value_json.ok else 'OFF' }}",
        json_attributes_topic: stateTopic,
        json_attributes_template: `{{ {${attributes.join(', ')}} | tojson }}`,
        device_class: deviceClass,
      },
    },
  ];
  // A failed check publishes value null, which renders "None": HA's "unknown" for a numeric sensor.
  if (probe.type === 'http' || probe.type === 'tcp' || probe.type === 'ping') {
    out.push({
      component: 'sensor',
      object: probeObject(name, 'latency'),
      name: `${label} latency`,
      body: {
        state_topic: stateTopic,
        value_template: '{{ value_json.value }}',
        device_class: 'duration',
        state_class: 'measurement',
        unit_of_measurement: 'ms',
      },
    });
  } else if (probe.type === 'disk') {
    out.push({
      component: 'sensor',
      object: probeObject(name, 'used'),
      name: `${label} used`,
      body: {
        state_topic: stateTopic,
        value_template: '{{ value_json.value }}',
        state_class: 'measurement',
        unit_of_measurement: '%',
        icon: 'mdi:harddisk',
      },
    });
  }
  return out;
}
