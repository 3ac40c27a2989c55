/**
 * What the agent really publishes parses with the schemas of core/formats.ts — strictly: no key
 * the schema does not name (docs/mqtt-api.md § JSON Schemas). One real agent on aedes runs a
 * quick action, a failing one, a slow one with live output, a steps action, a staggered one and
 * two probes; every message it wrote is then checked by its topic, and so is its audit log.
 */
import { groupsRecordSchema } from '../../src/core/groups.js';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  auditLineSchema,
  heartbeatSchema,
  outputMessageSchema,
  probeStateSchema,
  resultSchema,
  switchStateSchema,
} from '../../src/core/formats.js';
import { claimSchema, memberSchema, staggerRecordSchema } from '../../src/core/stagger.js';
import { Harness } from '../helpers/harness.js';

const h = new Harness();
const HOST = 'fmt-1';
let tcp: Server;

beforeAll(async () => {
  await h.start();
  tcp = createServer((s) => s.end()).listen(0, '127.0.0.1');
  await new Promise((r) => tcp.once('listening', r));
});
afterAll(async () => {
  await h.stop();
  tcp.close();
});

/** The schema for a topic of host HOST, or undefined for a plain-text topic (status, param values). */
function schemaFor(topic: string): z.ZodType | undefined {
  const rest = topic.split('/').slice(1);
  if (rest[0] === '_fleet') {
    if (rest[1] === 'groups') return groupsRecordSchema.strict();
    const kind = rest[3];
    if (kind === 'last') return staggerRecordSchema.strict();
    if (kind === 'claim') return claimSchema.strict();
    if (kind === 'member') return memberSchema.strict();
    throw new Error(`an unknown fleet topic ${topic}`);
  }
  const leaf = rest[1];
  if (leaf === 'result') return resultSchema;
  if (leaf === 'heartbeat') return heartbeatSchema;
  if (leaf === 'output') return outputMessageSchema;
  if (leaf === 'probe') return probeStateSchema;
  if (leaf === 'switch') return switchStateSchema;
  return undefined;
}

describe('the formats the agent writes', () => {
  it('every JSON message and audit line parses with its schema, strictly', async () => {
    await h.ctl.sub('homelab/#');
    const port = (tcp.address() as AddressInfo).port;
    const { stateDir } = await h.agent(
      HOST,
      {
        hello: { argv: ['echo', 'hi'] },
        fail: { argv: ['false'] },
        slow: { argv: ['sh', '-c', 'echo one; sleep 1.5; echo two'] },
        two: { steps: [['true'], ['echo', 'b']] },
        spaced: { argv: ['true'], stagger: { group: 'g', interval: '1s' } },
        on: { argv: ['true'] },
        off: { argv: ['false'] },
      },
      {
        extra: {
          heartbeat: { interval: '1s' },
          probes: {
            port: { type: 'tcp', host: '127.0.0.1', port, interval: '1s' },
            root: { type: 'disk', path: '/', interval: '1s' },
            // Command probes: a number, and the JSON kind with attributes; a boolean for the switch.
            num: { type: 'command', argv: ['echo', '42'], parse: 'number', unit: 'W', interval: '1s' },
            obj: {
              type: 'command',
              argv: ['echo', '{"value": "eco", "load": 3, "state": "x"}'],
              parse: 'json',
              interval: '1s',
            },
            flag: { type: 'command', argv: ['true'], parse: 'exit_code', interval: '1s' },
          },
          switches: { sw: { turn_on: 'on', turn_off: 'off', probe: 'flag' } },
        },
      },
    );
    expect((await h.request(HOST, { action: 'hello', transaction: 't1' })).status).toBe('succeeded');
    expect((await h.request(HOST, { action: 'fail' })).status).toBe('failed');
    expect((await h.request(HOST, { action: 'slow' })).status).toBe('succeeded');
    expect((await h.request(HOST, { action: 'two' })).status).toBe('succeeded');
    expect((await h.request(HOST, { action: 'spaced' })).status).toBe('succeeded');
    expect((await h.request(HOST, { action: 'nope' })).status).toBe('rejected');
    await h.ctl.wait((m) => m.topic === `homelab/${HOST}/heartbeat`, 15_000, 'a heartbeat');
    await h.ctl.wait((m) => m.topic === `homelab/${HOST}/probe/root`, 15_000, 'a disk probe state');
    await h.ctl.wait((m) => m.topic === `homelab/${HOST}/probe/port`, 15_000, 'a tcp probe state');
    expect((await h.request(HOST, { action: 'off' })).status).toBe('failed');
    await h.ctl.wait((m) => m.topic === `homelab/${HOST}/probe/obj`, 15_000, 'a json probe state');
    await h.ctl.wait((m) => m.topic === `homelab/${HOST}/probe/num`, 15_000, 'a number probe state');
    await h.ctl.wait(
      (m) => m.topic === `homelab/${HOST}/switch/sw` && m.text.includes('"last_status":"failed"'),
      15_000,
      'a switch state after a failed turn_off',
    );

    for (const m of h.ctl.messages) {
      if (m.text === '' || !(m.topic.startsWith(`homelab/${HOST}/`) || m.topic.startsWith('homelab/_fleet/')))
        continue;
      const schema = schemaFor(m.topic);
      if (!schema) continue;
      const r = schema.safeParse(JSON.parse(m.text));
      expect(r.success ? '' : `${m.topic}: ${r.error.message}`, m.text).toBe('');
    }
    // Every kind was seen at least once, so the loop above checked something of each.
    const kinds = (p: string) => h.ctl.messages.some((m) => m.text !== '' && m.topic.startsWith(p));
    for (const p of [
      `homelab/${HOST}/result/`,
      `homelab/${HOST}/heartbeat`,
      `homelab/${HOST}/output/`,
      `homelab/${HOST}/probe/`,
      `homelab/${HOST}/switch/`,
      'homelab/_fleet/stagger/g/last/',
      'homelab/_fleet/stagger/g/member/',
    ])
      expect(kinds(p), p).toBe(true);
    // A running result came for the slow command.
    expect(h.ctl.messages.some((m) => m.text.includes('"status":"running"'))).toBe(true);

    const audit = readFileSync(`${stateDir}/audit.jsonl`, 'utf8').trim().split('\n');
    expect(audit.length).toBeGreaterThanOrEqual(6);
    for (const line of audit) expect(auditLineSchema.safeParse(JSON.parse(line)).success, line).toBe(true);
  });
});
