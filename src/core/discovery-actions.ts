/**
 * Per-action monitoring in Home Assistant: one diagnostic sensor per action,
 * read from the heartbeat's `actions` extension (docs/mqtt-api.md).
 *
 * One entity per action, not one per figure: its state is the p95 duration
 * (a number HA keeps long-term statistics of), and the counters ride along as
 * attributes (`state_attr('sensor.<host>_stats_<action>', 'failed')` in an
 * automation). Six entities per action would flood a host's device page; the
 * host-wide counters (`Commands failed`, …) already exist as sensors.
 */

export interface ActionStatsSensor {
  object: string;
  name: string;
  body: Record<string, unknown>;
}

/** `stats_<action>`: the prefix keeps it apart from the fixed objects and from `run_<action>` / `param_…`. */
export function actionStatsObject(action: string): string {
  return `stats_${action}`;
}

/**
 * The action's entry of the heartbeat, `{}` when it is missing (a heartbeat from an older agent, or one
 * published before the action was added). `['…']`, not `.…`: an action name may start with a digit.
 */
function entry(action: string): string {
  return `((value_json.actions | default({}))['${action}'] | default({}))`;
}

export function actionStatsSensor(action: string, label: string, heartbeatTopic: string): ActionStatsSensor {
  return {
    object: actionStatsObject(action),
    name: `${label}: p95 duration`,
    body: {
      state_topic: heartbeatTopic,
      // "None" is HA's "unknown" for a numeric sensor: before the first run, and for a missing entry.
      value_template: `{{ ${entry(action)}.p95_ms | default(none) }}`,
      json_attributes_topic: heartbeatTopic,
      json_attributes_template: `{{ ${entry(action)} | tojson }}`,
      device_class: 'duration',
      state_class: 'measurement',
      unit_of_measurement: 'ms',
      // HA refuses entity_category "config" on sensors.
      entity_category: 'diagnostic',
    },
  };
}
