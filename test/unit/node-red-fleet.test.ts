/**
 * examples/node-red/fleet-flow.json (docs/fleet.md § Home Assistant and Node-RED): its function nodes
 * run here on real inputs — the fan-out's requests are requests of the contract, and the join keeps
 * only a final result of the host and id sent, and sums up failures first.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { topicMatches } from '../../src/broker/acl.js';
import { REQUEST_ID_RE } from '../../src/core/names.js';
import { FROM_AGENT, TO_AGENT } from '../helpers/contract.js';

type Obj = Record<string, unknown>;
interface FlowNode extends Obj {
  id: string;
  type: string;
  wires?: string[][];
}
const flow = JSON.parse(
  readFileSync(path.resolve(import.meta.dirname, '../../examples/node-red/fleet-flow.json'), 'utf8'),
) as FlowNode[];
const node = (id: string) => flow.find((n) => n.id === id)!;

/** A function node's body with Node-RED's node, flow context and a recorded setTimeout. */
function runner(id: string) {
  const store = new Map<string, unknown>();
  const errors: unknown[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const sent: unknown[] = [];
  const api = {
    error: (e: unknown) => errors.push(e),
    warn: () => undefined,
    send: (m: unknown) => sent.push(m),
  };
  const ctx = { get: (k: string) => store.get(k), set: (k: string, v: unknown) => store.set(k, v) };
  const body = new Function('msg', 'node', 'flow', 'setTimeout', String(node(id).func)) as (
    ...a: unknown[]
  ) => unknown;
  return {
    run: (msg: Obj, shared = ctx) =>
      body(msg, api, shared, (fn: () => void, ms: number) => timers.push({ fn, ms })),
    ctx,
    errors,
    timers,
    sent,
  };
}

const LONG = `h${'x'.repeat(62)}`;
const REQUEST_FIELDS = ['id', 'action', 'params', 'ts', 'ttl', 'transaction'];

describe('the fleet flow', () => {
  it('is wired inject → fan out → mqtt out (not retained), results → join → debug', () => {
    expect(node('hcf_inject').wires).toEqual([['hcf_fan']]);
    expect(node('hcf_fan').wires).toEqual([['hcf_out'], ['hcf_join']]);
    expect(node('hcf_out').retain).toBe('false');
    expect(node('hcf_in').topic).toBe('homelab/+/result/+');
    expect(FROM_AGENT).toContain(String(node('hcf_in').topic));
    expect(node('hcf_in').wires).toEqual([['hcf_join']]);
    expect(node('hcf_join').wires).toEqual([['hcf_debug']]);
  });

  it('fans out one request per host with its own id (≤ 64 characters), ts and ttl, and sums up failures first', () => {
    const fan = runner('hcf_fan');
    const out = fan.run({
      hosts: ['pihole-1', 'pihole-2', LONG, 'pihole-1'],
      action: 'restart_dns',
      params: {},
      wait: 30,
    }) as [{ topic: string; payload: Obj; messageExpiryInterval: number }[], null];
    const requests = out[0];
    expect(requests.map((r) => r.topic)).toEqual([
      'homelab/pihole-1/cmd/restart_dns',
      'homelab/pihole-2/cmd/restart_dns',
      `homelab/${LONG}/cmd/restart_dns`,
    ]);
    for (const r of requests) {
      expect(TO_AGENT.some((f) => topicMatches(f, r.topic))).toBe(true);
      expect(Object.keys(r.payload).every((k) => REQUEST_FIELDS.includes(k))).toBe(true);
      expect(String(r.payload.id)).toMatch(REQUEST_ID_RE);
      expect(r.payload).toMatchObject({ action: 'restart_dns', ttl: 30 });
      expect(typeof r.payload.ts).toBe('number');
      expect(r.messageExpiryInterval).toBe(30);
    }
    expect(fan.timers.map((t) => t.ms)).toEqual([30_000]);

    const join = runner('hcf_join');
    const idOf = (i: number) => String(requests[i]!.payload.id);
    const result = (host: string, id: string, status: string, topicHost = host) => ({
      topic: `homelab/${topicHost}/result/${id}`,
      payload: {
        id,
        host,
        status,
        exit_code: status === 'succeeded' ? 0 : 1,
        error: status === 'succeeded' ? undefined : 'boom',
      },
    });
    // Forged or foreign messages count for nothing.
    expect(join.run(result('pihole-1', idOf(0), 'succeeded', 'pihole-2'), fan.ctx)).toBeNull();
    expect(join.run(result('pihole-1', 'other-id', 'succeeded'), fan.ctx)).toBeNull();
    expect(join.run(result('pihole-1', idOf(0), 'running'), fan.ctx)).toBeNull();
    expect(join.run({ topic: `homelab/pihole-1/result/${idOf(0)}`, payload: 'garbage' }, fan.ctx)).toBeNull();
    // Two of three in: nothing yet; the deadline then reports the third no_answer.
    expect(join.run(result('pihole-1', idOf(0), 'succeeded'), fan.ctx)).toBeNull();
    expect(join.run(result('pihole-2', idOf(1), 'failed'), fan.ctx)).toBeNull();
    fan.timers[0]!.fn();
    const tick = (fan.sent[0] as [null, Obj])[1];
    const summary = join.run(tick, fan.ctx) as {
      payload: { results: Obj[]; succeeded: number; failed: number };
    };
    expect(summary.payload.results.map((r) => `${String(r.host)} ${String(r.status)}`)).toEqual([
      'pihole-2 failed',
      `${LONG} no_answer`,
      'pihole-1 succeeded',
    ]);
    expect(summary.payload).toMatchObject({ succeeded: 1, failed: 2 });
    // The run is over: a late result starts nothing.
    expect(join.run(result(LONG, idOf(2), 'succeeded'), fan.ctx)).toBeNull();
  });

  it('refuses a message without hosts or with a bad host id', () => {
    const fan = runner('hcf_fan');
    expect(fan.run({ action: 'restart_dns' })).toBeNull();
    expect(fan.run({ hosts: ['Bad Host'], action: 'restart_dns' })).toBeNull();
    expect(fan.errors).toHaveLength(2);
  });
});
