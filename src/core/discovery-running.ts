/**
 * What runs, in Home Assistant (docs/home-assistant.md § Cancel and Running): a Running sensor read from
 * the retained `P/H/running` (core/running.ts), and a Cancel button that stops what the sensor shows —
 * the request that has run longest (`cancel: "@oldest"`, core/cancel.ts). Both only on a host with
 * actions: where nothing can run there is nothing to show or stop.
 */
import { CANCEL_OLDEST } from './cancel.js';
import type { HostTopics } from './topics.js';

export interface RunningEntity {
  component: 'sensor' | 'button';
  object: string;
  name: string;
  body: Record<string, unknown>;
  /** The Cancel button brings its own availability (below); the sensor takes the host's. */
  ownAvailability: boolean;
}

/** Seconds a Cancel press stays valid, like every button's (discovery.ts BUTTON_TTL_S). */
export const CANCEL_TTL_S = 60;

/**
 * What the Cancel button publishes to `P/H/cmd`: rendered by HA at each press like a run button's
 * template (discovery.ts BUTTON_COMMAND_TEMPLATE), stamped with ts and ttl so a press made while the
 * host was down never cancels something hours later.
 */
export const CANCEL_COMMAND_TEMPLATE = `{"cancel": "${CANCEL_OLDEST}", "ts": {{ (as_timestamp(now()) * 1000) | int }}, "ttl": ${CANCEL_TTL_S}}`;

/** `current_run`/`cancel`: neither starts with a prefix of the per-action objects (run_, stats_, param_). */
export const RUNNING_OBJECT = 'current_run';
export const CANCEL_OBJECT = 'cancel';

export function runningEntities(t: HostTopics, hasActions: boolean): RunningEntity[] {
  if (!hasActions) return [];
  return [
    {
      component: 'sensor',
      object: RUNNING_OBJECT,
      name: 'Running',
      body: {
        state_topic: t.running,
        // `idle`, the action, or "<action> (step k/n)": at most 255 characters by its schema.
        value_template: '{{ value_json.label }}',
        // A few short fields (the line is cut to 200 characters): far under the recorder's 16 KB.
        json_attributes_topic: t.running,
        json_attributes_template:
          "{{ {'id': value_json.id, 'action': value_json.action, 'step': value_json.step, 'steps': value_json.steps, 'line': value_json.line, 'started_at': value_json.started_at, 'elapsed_s': value_json.elapsed_s, 'running': value_json.running} | tojson }}",
        icon: 'mdi:progress-clock',
      },
      ownAvailability: false,
    },
    {
      component: 'button',
      object: CANCEL_OBJECT,
      name: 'Cancel',
      body: {
        command_topic: t.cmd,
        command_template: CANCEL_COMMAND_TEMPLATE,
        payload_press: 'PRESS',
        qos: 1,
        retain: false,
        icon: 'mdi:stop-circle-outline',
        // Pressable only while the host is online AND something runs (HA: every entry must say so).
        availability: [
          { topic: t.status, payload_available: 'online', payload_not_available: 'offline' },
          {
            topic: t.running,
            value_template: "{{ 'online' if value_json.id else 'offline' }}",
            payload_available: 'online',
            payload_not_available: 'offline',
          },
        ],
        availability_mode: 'all',
      },
      ownAvailability: true,
    },
  ];
}
