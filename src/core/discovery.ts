/**
 * Home Assistant MQTT discovery payloads, as pure data (docs/mqtt-api.md § Home
 * Assistant discovery). Key order is fixed by construction, so a republish is
 * byte-identical and diffing against what was published last is exact.
 */
import type { ActionConfig } from '../config/schema.js';
import { discoveryTopic, hostTopics } from './topics.js';
import { actionStatsSensor } from './discovery-actions.js';
import { probeEntities } from './discovery-probes.js';
import type { ProbeConfig } from '../config/probes.js';
import type { UpdatesConfig } from '../config/updates.js';
import { updateEntities } from './discovery-updates.js';
import type { SwitchConfig } from '../config/switches.js';
import { switchEntity } from './discovery-switches.js';
import { rebootEntities } from './discovery-reboots.js';
import { runningEntities } from './discovery-running.js';
import { heartbeatSensors } from './discovery-heartbeat.js';
import { entityName, entitySlug, humanize, uniqueId } from './discovery-names.js';

export interface DiscoveryInput {
  host: string;
  prefix: string;
  discoveryPrefix: string;
  version: string;
  actions: Readonly<Record<string, ActionConfig>>;
  /** Probes: a binary_sensor each, plus a sensor for a latency or a disk's used share (discovery-probes.ts). */
  probes?: Readonly<Record<string, ProbeConfig>> | undefined;
  configurationUrl?: string | undefined;
  /** OS updates: an update entity and a reboot-required binary_sensor when enabled (discovery-updates.ts). */
  updates?: UpdatesConfig | undefined;
  /** Switches: a switch each, its state from its probe (discovery-switches.ts). */
  switches?: Readonly<Record<string, SwitchConfig>> | undefined;
}

export interface DiscoveryMessage {
  topic: string;
  payload: Record<string, unknown>;
}

export type Component = 'button' | 'binary_sensor' | 'sensor' | 'select' | 'number' | 'update' | 'switch';

// HA drops a state longer than 255 characters: every state we publish is a short status or a number.
export const HA_MAX_STATE = 255;

/** Characters of each output's tail the Last result sensor keeps as attributes (docs/home-assistant.md § Last result). */
export const ATTRIBUTE_OUTPUT_TAIL = 1000;
/** Characters kept of the start of `error` and `note` (what went wrong comes first). */
export const ATTRIBUTE_TEXT_HEAD = 200;

/**
 * The Last result sensor's attributes: HA's recorder stores `{}` for attributes over 16 KB, and a result
 * with the default max_output carries about 20 KB. So the attributes are a fixed set of fields with
 * the outputs' tails: at most 6 bytes a character once serialized (a control character as \u00XX), the
 * worst case stays under 16 KB (test/unit/discovery-limits.test.ts). The full result stays on its topic.
 */
export const LAST_RESULT_ATTRIBUTES =
  '{{ {' +
  [
    "'id': (value_json.id | string)[:64]",
    "'action': value_json.action",
    "'status': value_json.status",
    "'exit_code': value_json.exit_code",
    "'error_code': value_json.error_code | default(none)",
    `'error': (value_json.error | default(''))[:${ATTRIBUTE_TEXT_HEAD}]`,
    "'executed_at': value_json.executed_at | default(none)",
    "'completed_at': value_json.completed_at | default(none)",
    "'duration_ms': value_json.duration_ms | default(none)",
    `'stdout': (value_json.stdout | default(''))[-${ATTRIBUTE_OUTPUT_TAIL}:]`,
    `'stderr': (value_json.stderr | default(''))[-${ATTRIBUTE_OUTPUT_TAIL}:]`,
    `'stdout_truncated': value_json.stdout_truncated or (value_json.stdout | default('') | length) > ${ATTRIBUTE_OUTPUT_TAIL}`,
    `'stderr_truncated': value_json.stderr_truncated or (value_json.stderr | default('') | length) > ${ATTRIBUTE_OUTPUT_TAIL}`,
    `'note': (value_json.note | default(''))[:${ATTRIBUTE_TEXT_HEAD}]`,
  ].join(', ') +
  '} | tojson }}';

const PRESS = 'PRESS';

/** Seconds a button press stays valid: it runs within a minute of the press, or never (docs/home-assistant.md § Buttons). */
export const BUTTON_TTL_S = 60;

/**
 * What a button publishes: HA renders its command_template at each press with `value` = payload_press
 * (components/mqtt/button.py, MqttCommandTemplate in models.py; also entity_id, name, this), where HA's
 * template globals now() and as_timestamp() exist. It renders `{"press": true, "ts": 1765090800123,
 * "ttl": 60}`: ts in whole ms, so a press held in the agent's session while the host was down is
 * `expired`, never run late (docs/mqtt-api.md § Late requests). HA's publish takes no MQTT 5 properties,
 * so the button cannot set message expiry: ts/ttl is what makes it safe.
 */
export const BUTTON_COMMAND_TEMPLATE = `{"press": true, "ts": {{ (as_timestamp(now()) * 1000) | int }}, "ttl": ${BUTTON_TTL_S}}`;

/** The params of a button action that HA shows as select (enum) or number (integer) entities. */
export function exposedParams(action: ActionConfig): [string, ActionConfig['params'][string]][] {
  if (!action.button) return [];
  return Object.entries(action.params).filter(([, p]) => p.type === 'enum' || p.type === 'integer');
}

/** The value an exposed param starts at: its default, else the first enum value or the lowest allowed integer. */
export function initialParamValue(param: ActionConfig['params'][string]): string {
  if (param.default !== undefined) return String(param.default);
  if (param.type === 'enum') return param.values[0] ?? '';
  if (param.type === 'integer') return String(param.min ?? Math.min(0, param.max ?? 0));
  return '';
}

export function buildDiscovery(input: DiscoveryInput): DiscoveryMessage[] {
  const { host, discoveryPrefix } = input;
  const t = hostTopics(input.prefix, host);
  const device = deviceBlock(input);
  // No support_url: package.json names no homepage or repository to point at yet.
  const origin = { name: 'homelab-cmd', sw_version: input.version };
  const availability = {
    availability_topic: t.status,
    payload_available: 'online',
    payload_not_available: 'offline',
  };
  const out: DiscoveryMessage[] = [];
  const add = (
    component: Component,
    object: string,
    name: string,
    body: Record<string, unknown>,
    opts: { available?: boolean } = {},
  ) => {
    const payload: Record<string, unknown> = {
      name: entityName(host, name),
      unique_id: uniqueId(host, object),
      // object_id is ignored since HA 2026.4; default_entity_id is "<domain>.<slug>".
      default_entity_id: `${component}.${entitySlug(`${host}_${object}`)}`,
      ...body,
      ...(opts.available === false ? {} : availability),
      device,
      origin,
    };
    out.push({ topic: discoveryTopic(discoveryPrefix, component, host, object), payload });
  };

  // No availability here: HA then shows "disconnected" rather than "unavailable" while the host is down.
  add(
    'binary_sensor',
    'connectivity',
    'Connectivity',
    {
      state_topic: t.status,
      payload_on: 'online',
      payload_off: 'offline',
      device_class: 'connectivity',
      entity_category: 'diagnostic',
    },
    { available: false },
  );
  // No availability either: the last result stays visible while the host is down. State = status (≤ 255 chars).
  add(
    'sensor',
    'last_result',
    'Last result',
    {
      state_topic: t.result,
      value_template: '{{ value_json.status }}',
      json_attributes_topic: t.result,
      json_attributes_template: LAST_RESULT_ATTRIBUTES,
      icon: 'mdi:console',
    },
    { available: false },
  );

  for (const s of heartbeatSensors()) {
    add('sensor', s.object, s.name, {
      state_topic: t.heartbeat,
      value_template: s.template,
      ...s.meta,
      entity_category: 'diagnostic',
    });
  }
  // Per-action monitoring, every action (button or not): see discovery-actions.ts.
  for (const [name, action] of Object.entries(input.actions)) {
    const s = actionStatsSensor(name, action.name ?? humanize(name), t.heartbeat);
    add('sensor', s.object, s.name, s.body);
  }

  for (const [name, action] of Object.entries(input.actions)) {
    // A reboot action always has its button (docs/home-assistant.md § Reboots).
    if (!action.button && !action.reboot) continue;
    const deviceClass = action.device_class ?? (action.reboot ? 'restart' : undefined);
    add('button', `run_${name}`, action.name ?? humanize(name), {
      command_topic: t.cmdAction(name),
      command_template: BUTTON_COMMAND_TEMPLATE,
      payload_press: PRESS,
      qos: 1,
      retain: false,
      ...(deviceClass ? { device_class: deviceClass } : {}),
    });
    for (const [param, spec] of exposedParams(action)) {
      const state = t.param(name, param);
      const label = `${action.name ?? humanize(name)}: ${humanize(param)}`;
      if (spec.type === 'enum') {
        add('select', `param_${name}-${param}`, label, {
          state_topic: state,
          command_topic: `${state}/set`,
          options: [...spec.values],
          qos: 1,
          retain: false,
          entity_category: 'config',
        });
      } else if (spec.type === 'integer') {
        add('number', `param_${name}-${param}`, label, {
          state_topic: state,
          command_topic: `${state}/set`,
          min: spec.min ?? -2_147_483_648,
          max: spec.max ?? 2_147_483_647,
          step: 1,
          mode: 'box',
          qos: 1,
          retain: false,
          entity_category: 'config',
        });
      }
    }
  }
  for (const [name, probe] of Object.entries(input.probes ?? {})) {
    for (const e of probeEntities(name, probe, probe.name ?? humanize(name), t.probe(name)))
      add(e.component, e.object, e.name, e.body);
  }
  for (const [name, sw] of Object.entries(input.switches ?? {})) {
    const e = switchEntity(name, sw, sw.name ?? humanize(name), t);
    add(e.component, e.object, e.name, e.body);
  }
  if (input.updates)
    for (const e of updateEntities(input.updates, t)) add(e.component, e.object, e.name, e.body);
  for (const e of rebootEntities(input.actions, t))
    add(e.component, e.object, e.name, e.body, { available: false });
  // The Running sensor and the Cancel button (discovery-running.ts).
  for (const e of runningEntities(t, Object.keys(input.actions).length > 0))
    add(e.component, e.object, e.name, e.body, { available: !e.ownAvailability });
  return out;
}

function deviceBlock(input: DiscoveryInput): Record<string, unknown> {
  const d: Record<string, unknown> = {
    identifiers: [`homelab_cmd_${input.host}`],
    name: input.host,
    manufacturer: 'homelab-cmd',
    model: 'homelab-cmd agent',
    sw_version: input.version,
  };
  if (input.configurationUrl) d.configuration_url = input.configurationUrl;
  return d;
}

/** The serialized form that is published and diffed. */
export function serialize(msg: DiscoveryMessage): string {
  return JSON.stringify(msg.payload);
}
