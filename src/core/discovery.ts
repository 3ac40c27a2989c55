/**
 * Home Assistant MQTT discovery payloads, as pure data (CONTRACT.md § Home
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
}

export interface DiscoveryMessage {
  topic: string;
  payload: Record<string, unknown>;
}

export type Component = 'button' | 'binary_sensor' | 'sensor' | 'select' | 'number' | 'update';

// HA drops a state longer than 255 characters: every state we publish is a short status or a number.
export const HA_MAX_STATE = 255;

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

/**
 * `homelab_cmd_H_<object>`; objects of actions are prefixed so they never meet the fixed ones, and a
 * param's object joins action and param with "-", which neither name may contain, so no two collide.
 */
export function uniqueId(host: string, object: string): string {
  return `homelab_cmd_${host}_${object}`;
}

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
      name,
      unique_id: uniqueId(host, object),
      // object_id is ignored since HA 2026.4; default_entity_id is "<domain>.<slug>".
      default_entity_id: `${component}.${`${host}_${object}`.replace(/-/g, '_')}`,
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
    if (!action.button) continue;
    add('button', `run_${name}`, action.name ?? humanize(name), {
      command_topic: t.cmdAction(name),
      command_template: BUTTON_COMMAND_TEMPLATE,
      payload_press: PRESS,
      qos: 1,
      retain: false,
      ...(action.device_class ? { device_class: action.device_class } : {}),
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
  if (input.updates)
    for (const e of updateEntities(input.updates, t)) add(e.component, e.object, e.name, e.body);
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

interface HeartbeatSensor {
  object: string;
  name: string;
  template: string;
  meta: Record<string, string>;
}

function heartbeatSensors(): HeartbeatSensor[] {
  const pct = (k: 'memory' | 'disk') =>
    `{{ ((value_json.${k}.used / value_json.${k}.total) * 100) | round(1) if value_json.${k}.total else 0 }}`;
  const counter = (k: string, name: string): HeartbeatSensor => ({
    object: k,
    name,
    template: `{{ value_json.stats.${k} }}`,
    meta: { state_class: 'total_increasing', icon: 'mdi:counter' },
  });
  return [
    {
      object: 'uptime',
      name: 'Uptime',
      template: '{{ value_json.uptime_s }}',
      meta: { device_class: 'duration', state_class: 'measurement', unit_of_measurement: 's' },
    },
    {
      object: 'load_1',
      name: 'Load (1 min)',
      template: '{{ value_json.load[0] }}',
      meta: { state_class: 'measurement', icon: 'mdi:gauge' },
    },
    {
      object: 'load_5',
      name: 'Load (5 min)',
      template: '{{ value_json.load[1] }}',
      meta: { state_class: 'measurement', icon: 'mdi:gauge' },
    },
    {
      object: 'load_15',
      name: 'Load (15 min)',
      template: '{{ value_json.load[2] }}',
      meta: { state_class: 'measurement', icon: 'mdi:gauge' },
    },
    {
      object: 'memory_use',
      name: 'Memory use',
      template: pct('memory'),
      meta: { state_class: 'measurement', unit_of_measurement: '%', icon: 'mdi:memory' },
    },
    {
      object: 'disk_use',
      name: 'Disk use',
      template: pct('disk'),
      meta: { state_class: 'measurement', unit_of_measurement: '%', icon: 'mdi:harddisk' },
    },
    {
      object: 'running',
      name: 'Commands running',
      template: '{{ value_json.running }}',
      meta: { state_class: 'measurement', icon: 'mdi:play-circle-outline' },
    },
    {
      object: 'queued',
      name: 'Commands queued',
      template: '{{ value_json.queued }}',
      meta: { state_class: 'measurement', icon: 'mdi:tray-full' },
    },
    counter('executed', 'Commands executed'),
    counter('succeeded', 'Commands succeeded'),
    counter('failed', 'Commands failed'),
    counter('timed_out', 'Commands timed out'),
    counter('rejected', 'Requests rejected'),
    {
      object: 'avg_duration',
      name: 'Average duration',
      template: '{{ value_json.stats.avg_duration_ms }}',
      meta: { device_class: 'duration', state_class: 'measurement', unit_of_measurement: 'ms' },
    },
  ];
}

/** "restart_dns" → "Restart dns": HA prefixes the device name, so entity names never repeat the host. */
export function humanize(name: string): string {
  const s = name.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The serialized form that is published and diffed. */
export function serialize(msg: DiscoveryMessage): string {
  return JSON.stringify(msg.payload);
}
