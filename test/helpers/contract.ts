/** docs/mqtt-api.md § Topics with P = homelab, as filters: what consumers (HA files, Node-RED flows) may use. */
export const TO_AGENT = ['homelab/+/cmd', 'homelab/+/cmd/+', 'homelab/+/param/+/+/set'];
export const FROM_AGENT = [
  'homelab/+/result',
  'homelab/+/result/+',
  'homelab/+/status',
  'homelab/+/heartbeat',
  'homelab/+/output/+',
  'homelab/+/param/+/+',
  // Extension: probe states (docs/mqtt-api.md § Probes).
  'homelab/+/probe/+',
  // Extension: switch states (docs/mqtt-api.md § Switches).
  'homelab/+/switch/+',
  'homelab/_fleet/stagger/+',
];
