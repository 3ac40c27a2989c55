/**
 * The JSON Schema files of docs/schema/, generated from the zod schemas (core/formats.ts,
 * core/request.ts, core/stagger.ts) by `npm run schema`, for consumers that validate what they read
 * (Node-RED flows, HA templates, scripts): docs/mqtt-api.md § JSON Schemas. A unit test fails when
 * the committed files differ from what this returns, so the files cannot drift from the code.
 */
import { z } from 'zod';
import {
  auditLineSchema,
  heartbeatSchema,
  outputMessageSchema,
  probeStateSchema,
  resultSchema,
  switchStateSchema,
} from './formats.js';
import { requestSchema } from './request.js';
import { claimSchema, memberSchema, staggerRecordSchema } from './stagger.js';
import { groupsRecordSchema } from './groups.js';
import { runningStateSchema } from './running.js';

/** The request object as a sender may write it: the fields, plus the HomelabCmd hub's aliases. */
const requestWire = requestSchema.extend({
  action_id: z.union([z.string(), z.number()]).optional(),
  action_type: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  timeout_seconds: z.number().positive().optional(),
});

const FILES: Record<string, { schema: z.ZodType; title: string; description: string }> = {
  'request.json': {
    schema: requestWire,
    title: 'homelab-cmd request object',
    description:
      'A JSON payload on P/H/cmd or P/H/cmd/ACTION (docs/mqtt-api.md § The request object). The agent checks more than this shape: names, params, ts/ttl, signature.',
  },
  'result.json': {
    schema: resultSchema,
    title: 'homelab-cmd result object',
    description: 'P/H/result/ID and P/H/result, retained (docs/mqtt-api.md § Result object).',
  },
  'heartbeat.json': {
    schema: heartbeatSchema,
    title: 'homelab-cmd heartbeat object',
    description:
      'P/H/heartbeat, retained, every heartbeat.interval (docs/mqtt-api.md § Status and heartbeat).',
  },
  'output.json': {
    schema: outputMessageSchema,
    title: 'homelab-cmd live output message',
    description: 'P/H/output/ID, not retained, QoS 0 (docs/mqtt-api.md § Live output).',
  },
  'running.json': {
    schema: runningStateSchema,
    title: 'homelab-cmd running state',
    description: 'P/H/running, retained: what runs now, for the Running sensor (docs/mqtt-api.md § Running).',
  },
  'probe.json': {
    schema: probeStateSchema,
    title: 'homelab-cmd probe state',
    description: 'P/H/probe/NAME, retained, after every check (docs/mqtt-api.md § Probes).',
  },
  'switch.json': {
    schema: switchStateSchema,
    title: 'homelab-cmd switch state',
    description:
      "P/H/switch/NAME, retained, after each check of the switch's probe and each turn_on/turn_off (docs/mqtt-api.md § Switches).",
  },
  'stagger-last.json': {
    schema: staggerRecordSchema.strict(),
    title: 'homelab-cmd stagger record',
    description: "P/_fleet/stagger/GROUP/last/H: H's last run in GROUP (docs/stagger.md § Topics).",
  },
  'stagger-claim.json': {
    schema: claimSchema.strict(),
    title: 'homelab-cmd stagger claim',
    description:
      'P/_fleet/stagger/GROUP/claim/H: H intends to start a run of GROUP now (docs/stagger.md § Topics).',
  },
  'stagger-member.json': {
    schema: memberSchema.strict(),
    title: 'homelab-cmd stagger membership',
    description: 'P/_fleet/stagger/GROUP/member/H: H has an action in GROUP (docs/stagger.md § Topics).',
  },
  'groups.json': {
    schema: groupsRecordSchema.strict(),
    title: 'homelab-cmd groups record',
    description:
      'P/_fleet/groups/H: the groups H is in, its stagger groups included (docs/fleet.md § Groups).',
  },
  'audit-line.json': {
    schema: auditLineSchema,
    title: 'homelab-cmd audit log line',
    description: 'One line of state_dir/audit.jsonl (docs/security.md).',
  },
};

/** File name → file text, in a stable order and layout. */
export function jsonSchemaFiles(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, f] of Object.entries(FILES)) {
    const json = z.toJSONSchema(f.schema, { io: 'input', unrepresentable: 'any' });
    const doc = { ...json, title: f.title, description: f.description };
    out[name] = `${JSON.stringify(doc, null, 2)}\n`;
  }
  return out;
}
