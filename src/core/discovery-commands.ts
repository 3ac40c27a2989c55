/**
 * A command probe in Home Assistant: one entity read from its retained `P/H/probe/NAME` state — a
 * binary_sensor for parse exit_code and match, a sensor for number, enum and json
 * (docs/home-assistant.md § Command probes and switches). While the probe fails its value is null,
 * which renders "None": HA's unknown, for every one of these; the reason is the `error` attribute.
 */
import type { ProbeOf } from '../config/probes.js';
import type { ProbeEntity } from './discovery-probes.js';

/** `error` only, or the JSON object's other keys with it: nothing that changes at every check (checked_at). */
const ERROR_ATTRIBUTES = "{{ {'error': value_json.error} | tojson }}";
// The agent keeps `attributes` under 4 KiB and without `state` (core/command-probes.ts); error comes last, so it wins.
const JSON_ATTRIBUTES = '{{ dict(value_json.attributes | default({}), error=value_json.error) | tojson }}';

export function commandProbeEntity(
  object: string,
  probe: ProbeOf<'command'>,
  label: string,
  stateTopic: string,
): ProbeEntity {
  const common = {
    state_topic: stateTopic,
    json_attributes_topic: stateTopic,
    json_attributes_template: probe.parse === 'json' ? JSON_ATTRIBUTES : ERROR_ATTRIBUTES,
  };
  if (probe.parse === 'exit_code' || probe.parse === 'match')
    return {
      component: 'binary_sensor',
      object,
      name: label,
      body: {
        ...common,
        value_template: "{{ 'None' if value_json.value is none else ('ON' if value_json.value else 'OFF') }}",
        ...(probe.device_class ? { device_class: probe.device_class } : {}),
      },
    };
  const body: Record<string, unknown> = { ...common, value_template: '{{ value_json.value }}' };
  if (probe.parse === 'enum') {
    // HA's enum sensor shows only these; the agent reads any other output as an error (null).
    body.device_class = 'enum';
    body.options = [...(probe.options ?? [])];
  } else {
    if (probe.device_class) body.device_class = probe.device_class;
    if (probe.state_class) body.state_class = probe.state_class;
    if (probe.unit) body.unit_of_measurement = probe.unit;
    if (probe.precision !== undefined) body.suggested_display_precision = probe.precision;
  }
  return { component: 'sensor', object, name: label, body };
}
