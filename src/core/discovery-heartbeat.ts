/**
 * The host's own sensors read from its heartbeat (docs/mqtt-api.md § Status and heartbeat): uptime, load, memory
 * and disk use, what runs and waits, and the run counters. Its own module because this table changes
 * with the heartbeat, not with the rest of discovery; discovery.ts gives each its topic and device.
 */

interface HeartbeatSensor {
  object: string;
  name: string;
  template: string;
  meta: Record<string, string>;
}

export function heartbeatSensors(): HeartbeatSensor[] {
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
