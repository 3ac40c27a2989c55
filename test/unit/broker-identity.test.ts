/**
 * The pure parts of broker identities and packet sizes (docs/security.md § Broker identities):
 * the agent's packet gate under every way TCP can cut a stream, the discovery payload rule, the
 * client id rule and the takeover backoff.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PacketGate } from '../../src/agent/packet-gate.js';
import { TakeoverWatch } from '../../src/agent/takeover.js';
import { Identities, refuseDiscovery } from '../../src/broker/identity.js';
import { publishWireSize, readFixedHeader } from '../../src/broker/packet-size.js';
import { silentLogger } from '../../src/log.js';

function vbi(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A PUBLISH (QoS 0 or 1) with topic "t/<n>" and a body of `size` bytes, or a PINGRESP. */
function packet(kind: 'publish' | 'ping', qos: 0 | 1, id: number, size: number): Buffer {
  if (kind === 'ping') return Buffer.from([0xd0, 0]);
  const topic = Buffer.from(`t/${id}`);
  const head = [topic.length >> 8, topic.length & 0xff, ...topic, ...(qos ? [id >> 8, id & 0xff] : [])];
  const body = Buffer.concat([Buffer.from(head), Buffer.alloc(size, 0x61)]);
  return Buffer.concat([Buffer.from([0x30 | (qos << 1), ...vbi(body.length)]), body]);
}

describe('the agent packet gate', () => {
  it('passes every packet within the limit and skips (and acknowledges) the larger ones, however the stream is cut', () => {
    const spec = fc.array(
      fc.record({
        kind: fc.constantFrom('publish' as const, 'ping' as const),
        qos: fc.constantFrom(0 as const, 1 as const),
        size: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 900, max: 3000 })),
      }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(spec, fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1 }), (packets, cuts) => {
        const limit = 1024;
        const wire = packets.map((p, i) => packet(p.kind, p.qos, i + 1, p.size));
        const acked: number[] = [];
        const dropped: string[] = [];
        const gate = new PacketGate(
          limit,
          (id) => acked.push(id),
          (d) => dropped.push(d.topic),
        );
        const out: Buffer[] = [];
        gate.on('data', (c: Buffer) => out.push(c));
        const all = Buffer.concat(wire);
        for (let at = 0, i = 0; at < all.length; i++) {
          const n = cuts[i % cuts.length]!;
          gate.write(all.subarray(at, at + n));
          at += n;
        }
        const kept = wire.filter((w) => w.length <= limit);
        const big = wire.map((w, i) => ({ w, i })).filter(({ w }) => w.length > limit);
        expect(Buffer.concat(out).equals(Buffer.concat(kept))).toBe(true);
        expect(dropped).toEqual(big.map(({ i }) => `t/${i + 1}`));
        expect(acked).toEqual(big.filter(({ i }) => packets[i]!.qos === 1).map(({ i }) => i + 1));
      }),
      { numRuns: 300 },
    );
  });

  it('ends the connection on any other packet over the limit', async () => {
    const gate = new PacketGate(
      64,
      () => undefined,
      () => undefined,
    );
    const failed = new Promise<Error>((resolve) => gate.on('error', resolve));
    gate.write(Buffer.from([0x90, ...vbi(5000)])); // a SUBACK of 5000 bytes
    expect((await failed).message).toContain('5003 bytes');
  });
});

describe('packet sizes on the broker', () => {
  it('reads a fixed header as it arrives', () => {
    expect(readFixedHeader(Buffer.from([0x10]))).toEqual({ state: 'incomplete' });
    expect(readFixedHeader(Buffer.from([0x10, 0x80, 0x80]))).toEqual({ state: 'incomplete' });
    expect(readFixedHeader(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]))).toMatchObject({
      remaining: 268_435_455,
      headerLength: 5,
    });
    expect(readFixedHeader(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]))).toEqual({
      state: 'malformed',
    });
  });

  it('counts a PUBLISH as it is written', () => {
    const p = packet('publish', 1, 7, 300);
    expect(publishWireSize({ topic: 't/7', payload: Buffer.alloc(300), qos: 1 }, 4)).toBe(p.length);
    // MQTT 5: one more byte for an empty property list, and the properties themselves.
    expect(publishWireSize({ topic: 't/7', payload: Buffer.alloc(300), qos: 1, properties: {} }, 5)).toBe(
      p.length + 1,
    );
    expect(
      publishWireSize(
        {
          topic: 't',
          payload: '',
          qos: 0,
          properties: { userProperties: { a: 'bc' }, messageExpiryInterval: 5 },
        },
        5,
      ),
    ).toBe(2 + 3 + 1 + (1 + 2 + 1 + 2 + 2) + 5);
  });
});

describe('identity rules', () => {
  const ctx = { prefix: 'homelab', discoveryPrefix: 'homeassistant' };
  const agent = { role: 'agent' as const, host: 'a' };

  it('binds client ids to accounts', () => {
    const ids = new Identities([
      { username: 'agent-a', role: 'agent', host: 'a' },
      { username: 'agent-c', role: 'agent', host: 'c', clientId: 'custom' },
      { username: 'ha', role: 'controller' },
    ]);
    expect(ids.refuseClientId('agent-a', agent, 'homelab-cmd-a')).toBeUndefined();
    expect(ids.refuseClientId('agent-a', agent, 'homelab-cmd-c')).toContain('must connect with');
    expect(ids.refuseClientId('agent-c', { role: 'agent', host: 'c' }, 'homelab-cmd-c')).toContain('custom');
    for (const id of ['homelab-cmd-a', 'homelab-cmd-c', 'custom'])
      expect(ids.refuseClientId('ha', { role: 'controller' }, id)).toContain('belongs to agent account');
    expect(ids.refuseClientId('ha', { role: 'controller' }, 'homelab-cmd-cli-1')).toBeUndefined();
    expect(ids.roleOfClientId('custom')).toEqual({ role: 'agent', host: 'c' });
    expect(ids.roleOfClientId('anything')).toEqual({ role: 'controller' });
  });

  it("refuses a discovery config that names another host's device or ids", () => {
    const topic = 'homeassistant/sensor/a/x/config';
    const own = { unique_id: 'homelab_cmd_a_x', device: { identifiers: ['homelab_cmd_a'] } };
    const judge = (payload: unknown, t = topic) => refuseDiscovery(agent, t, JSON.stringify(payload), ctx);
    expect(judge(own)).toBeUndefined();
    expect(judge({ ...own, default_entity_id: 'sensor.a_x' })).toBeUndefined();
    expect(refuseDiscovery(agent, topic, '', ctx)).toBeUndefined();
    // Host "a" must not take host "a_b"'s ids: exact, not a prefix.
    expect(judge({ ...own, unique_id: 'homelab_cmd_a_b_x' })).toBeDefined();
    expect(judge({ ...own, device: { identifiers: ['homelab_cmd_a_b'] } })).toBeDefined();
    expect(judge({ uniq_id: 'homelab_cmd_a_x', dev: { ids: 'homelab_cmd_b' } })).toBeDefined();
    expect(judge({ ...own, obj_id: 'b_x' })).toBeDefined();
    expect(judge(own, 'homeassistant/device/a/config')).toBeDefined();
    // HA expands an abbreviation over its long key: both in one config is refused, whichever is own.
    expect(judge({ ...own, uniq_id: 'homelab_cmd_b_restart' })).toBeDefined();
    expect(judge({ ...own, dev: { ids: ['homelab_cmd_b'] } })).toBeDefined();
    expect(
      judge({ ...own, device: { identifiers: ['homelab_cmd_a'], ids: ['homelab_cmd_b'] } }),
    ).toBeDefined();
    expect(judge({ ...own, default_entity_id: 'sensor.a_x', def_ent_id: 'sensor.b_x' })).toBeDefined();
    expect(refuseDiscovery(agent, topic, '{"a":', ctx)).toBeDefined();
    expect(refuseDiscovery(agent, topic, 'x'.repeat(70_000), ctx)).toBeDefined();
    expect(refuseDiscovery({ role: 'controller' }, topic, 'anything', ctx)).toBeUndefined();
  });
});

describe('the takeover watch', () => {
  it('waits longer after each takeover, logs once, and forgives after a long connection', () => {
    let now = 0;
    const lines: string[] = [];
    const log = Object.assign(Object.create(silentLogger()) as ReturnType<typeof silentLogger>, {
      error: (_o: unknown, msg: string) => lines.push(msg),
      info: (_o: unknown, msg: string) => lines.push(msg),
    });
    const w = new TakeoverWatch('homelab-cmd-a', log, () => now);
    const next = { url: 'mqtt://x', protocolVersion: 5 as const, delayMs: 100 };
    const kicked = () => {
      w.connected();
      now += 500;
      w.disconnected(0x8e);
      return w.delay(next, true).delayMs;
    };
    expect([kicked(), kicked(), kicked()]).toEqual([5000, 10_000, 20_000]);
    expect(
      lines.filter((l) => l.includes("another client is using this agent's client id homelab-cmd-a")),
    ).toHaveLength(1);
    // Three short connections in a row without a reason count too; a long one ends it.
    w.connected();
    now += 120_000;
    expect(w.delay(next, true).delayMs).toBe(100);
    const short = () => {
      w.connected();
      now += 100;
      return w.delay(next, true).delayMs;
    };
    expect([short(), short(), short()]).toEqual([100, 100, 5000]);
  });
});
