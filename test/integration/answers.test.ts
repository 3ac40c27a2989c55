/**
 * Answers that cannot be faked or lost (docs/security.md § Answers): MQTT 5 replies only under the
 * agent's own P/H/reply/, a known id always answered with its stored result, and the retained per-id
 * results kept within their bound across restarts. A real broker, real agents, real child processes.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/core/result.js';
import { sign } from '../../src/core/signing.js';
import { tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';
import { until } from '../helpers/wait.js';

const h = new Harness();
let watch: TestClient;
beforeAll(async () => {
  await h.start();
  // Sees everything the agents publish (reply topics anywhere included).
  watch = await TestClient.connect(h.url);
  await watch.sub('#');
});
afterAll(async () => {
  await watch.end();
  await h.stop();
});

const echo = {
  argv: ['echo', '{m}'],
  params: { m: { type: 'string', pattern: '^[a-z0-9]{1,20}$', default: 'hi' } },
};

/** Publishes a request with MQTT 5 response properties. */
function rr(
  host: string,
  body: Record<string, unknown>,
  responseTopic: string,
  corr = 'c',
): Promise<unknown> {
  return h.ctl.pub(`homelab/${host}/cmd`, JSON.stringify(body), {
    properties: { responseTopic, correlationData: Buffer.from(corr) },
  });
}

describe('MQTT 5 replies go only under the agent’s own P/H/reply/', () => {
  const host = 'ans-reply';
  beforeAll(async () => {
    await h.agent(host, { echo, fails: { argv: ['sh', '-c', 'exit 3'] } });
  });

  it('a response topic under P/H/reply/ gets the final result with its correlation data', async () => {
    const reply = watch.next((m) => m.topic === `homelab/${host}/reply/me`, 10_000, 'the reply');
    await rr(host, { id: 'rr-ok', action: 'echo', params: { m: 'rr' } }, `homelab/${host}/reply/me`, 'c-1');
    const m = await reply;
    expect(JSON.parse(m.text)).toMatchObject({ id: 'rr-ok', host, status: 'succeeded', stdout: 'rr\n' });
    expect(m.packet.properties?.correlationData?.toString()).toBe('c-1');
    expect(m.packet.retain).toBe(false);
  });

  it('any other response topic gets no reply: another id’s result, other hosts, _reply, empty levels, $, too long, big correlation data', async () => {
    const victim = await h.request(host, { id: 'victim', action: 'echo' });
    expect(victim.status).toBe('succeeded');
    const bad = [
      `homelab/${host}/result/victim`,
      `homelab/${host}/result`,
      `homelab/${host}/status`,
      'homelab/_reply/me',
      'homelab/other-host/reply/me',
      `homelab/${host}/reply`,
      `homelab/${host}/reply/`,
      `homelab/${host}/reply//x`,
      `homelab/${host}/reply/$x`,
      `homelab/${host}/reply/${'x'.repeat(300)}`,
      `homelab/_fleet/stagger/${host}`,
      `homeassistant/button/${host}/x/config`,
    ];
    const seenBefore = watch.messages.length;
    for (const [i, topic] of bad.entries()) {
      const done = h.finalFor(host, `bad-rt-${i}`);
      await rr(host, { id: `bad-rt-${i}`, action: 'fails' }, topic);
      expect((await done).status).toBe('failed');
    }
    // Correlation data over the bound: no reply either.
    const big = h.finalFor(host, 'bad-corr');
    await rr(host, { id: 'bad-corr', action: 'fails' }, `homelab/${host}/reply/big`, 'x'.repeat(2000));
    await big;
    // A good request last: once its reply is here, every earlier one would have been too.
    const probe = watch.next((m) => m.topic === `homelab/${host}/reply/probe`, 10_000, 'the probe reply');
    await rr(host, { id: 'rr-probe', action: 'nope' }, `homelab/${host}/reply/probe`);
    await probe;
    const published = watch.messages.slice(seenBefore);
    for (const topic of [...bad.filter((t) => !t.endsWith('/result')), `homelab/${host}/reply/big`])
      expect(
        published.filter((m) => m.topic === topic),
        topic,
      ).toEqual([]);
    // The victim's topic saw nothing: its owner's `send` would not see a forged final result.
    expect(h.seen(host, 'victim')).toEqual([victim]);
    // (Wildcards in a response topic are a protocol error the broker refuses: test/unit/reply-topic.test.ts.)
  }, 60_000);
});

describe('a known id is answered with its stored result, never a rejection over it', () => {
  const host = 'ans-known';
  const key = 'answers-fleet-key-0123456789abcdef';
  beforeAll(async () => {
    const dir = tempDir();
    const keyFile = path.join(dir, 'fleet.key');
    writeFileSync(keyFile, `${key}\n`);
    await h.agent(
      host,
      { echo, slow: { argv: ['sh', '-c', 'sleep 2; echo done'] } },
      { extra: { security: { key_file: keyFile } } },
    );
  });

  it.each([
    ['unknown field', { id: 'k-1', action: 'echo', bogus: 1 }],
    ['unknown action', { id: 'k-1', action: 'nope' }],
    ['bad params', { id: 'k-1', action: 'echo', params: { m: 'NOT OK!' } }],
    ['HomelabCmd alias of the id', { action_id: 'k-1', action: 'echo', params: 7 }],
  ])('an invalid request reusing a finished id (%s) gets the stored result', async (_what, body) => {
    const first = h.seen(host, 'k-1').find((r) => r.status === 'succeeded');
    const stored = first ?? (await h.request(host, { id: 'k-1', action: 'echo' }));
    expect(stored.status).toBe('succeeded');
    const again = h.finalFor(host, 'k-1');
    await h.ctl.pub(`homelab/${host}/cmd`, JSON.stringify(body));
    expect(await again).toEqual(stored);
    // A fresh subscriber still reads the stored result.
    const late = await TestClient.connect(h.url);
    try {
      await late.sub(`homelab/${host}/result/k-1`);
      const m = await late.wait((x) => x.topic === `homelab/${host}/result/k-1`);
      expect(JSON.parse(m.text)).toEqual(stored);
    } finally {
      await late.end();
    }
  });

  it('an invalid request reusing the id of a running command does not end it with `rejected`', async () => {
    const done = h.finalFor(host, 'k-run', 20_000);
    await h.ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'k-run' }));
    await h.ctl.waitJson<Result>(`homelab/${host}/result/k-run`, (r) => r.status === 'running');
    await h.ctl.pub(`homelab/${host}/cmd`, JSON.stringify({ id: 'k-run', action: 'slow', bogus: true }));
    expect(await done).toMatchObject({ id: 'k-run', status: 'succeeded', stdout: 'done\n' });
    expect(h.seen(host, 'k-run').map((r) => r.status)).not.toContain('rejected');
  });

  it('a request repeating a running id gets its final result on its reply topic', async () => {
    const done = h.finalFor(host, 'k-wait', 20_000);
    await h.ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'k-wait' }));
    await h.ctl.waitJson<Result>(`homelab/${host}/result/k-wait`, (r) => r.status === 'running');
    const reply = watch.next((m) => m.topic === `homelab/${host}/reply/wait`, 20_000, 'the reply');
    await rr(host, { id: 'k-wait', action: 'slow' }, `homelab/${host}/reply/wait`, 'c-wait');
    const m = await reply;
    expect(JSON.parse(m.text)).toEqual(await done);
    expect(JSON.parse(m.text)).toMatchObject({ id: 'k-wait', status: 'succeeded' });
    expect(m.packet.properties?.correlationData?.toString()).toBe('c-wait');
  }, 60_000);

  it('a signed replay is `replayed` on the reply topic and the latest result, never on the id’s topic', async () => {
    const ts = Date.now();
    const body = {
      id: 'k-signed',
      action: 'echo',
      params: { m: 'once' },
      ts,
      sig: sign(key, { host, action: 'echo', id: 'k-signed', ts, params: { m: 'once' } }),
    };
    const stored = await h.request(host, body);
    expect(stored).toMatchObject({ status: 'succeeded', stdout: 'once\n' });
    const reply = watch.next((m) => m.topic === `homelab/${host}/reply/replay`, 10_000, 'the replay reply');
    const latest = h.ctl.next(
      (m) => m.topic === `homelab/${host}/result` && m.text.includes('"replayed"'),
      10_000,
      'the replay on the latest-result topic',
    );
    await rr(host, body, `homelab/${host}/reply/replay`);
    expect(JSON.parse((await reply).text)).toMatchObject({ id: 'k-signed', error_code: 'replayed' });
    await latest;
    expect(h.seen(host, 'k-signed')).toEqual([stored]);
  });
});

describe('retained per-id results stay within the last 100 across restarts', () => {
  it('150 rejections, a restart, 150 more: at most 100 retained P/H/result/+ topics', async () => {
    const host = 'ans-bound';
    const { agent, stateDir } = await h.agent(host, { echo });
    const batch = async (tag: string) => {
      const ids = Array.from({ length: 150 }, (_, i) => `${tag}-${i}`);
      const finals = ids.map((id) => h.finalFor(host, id, 60_000));
      for (const id of ids) await h.ctl.pub(`homelab/${host}/cmd`, JSON.stringify({ id, action: 'nope' }));
      for (const r of await Promise.all(finals)) expect(r.error_code).toBe('unknown_action');
    };
    await batch('one');
    await h.stopAgent(agent);
    await h.agent(host, { echo }, { stateDir });
    await batch('two');
    // What the broker retains, as the live stream shows it: the last message on each topic.
    const retained = () => {
      const last = new Map<string, string>();
      for (const m of h.ctl.messages)
        if (m.topic.startsWith(`homelab/${host}/result/`)) last.set(m.topic, m.text);
      return [...last.values()].filter((t) => t !== '').length;
    };
    await until(() => retained() <= 100, 30_000, `at most 100 retained results (now ${retained()})`);
    // And as a new subscriber reads them from the broker.
    const late = await TestClient.connect(h.url);
    try {
      await late.sub(`homelab/${host}/result/+`);
      const expected = retained();
      await until(() => late.messages.length >= expected, 20_000, `${expected} retained results`);
      expect(late.messages.length).toBeLessThanOrEqual(100);
      expect(late.messages.some((m) => m.topic.endsWith('/two-149'))).toBe(true);
    } finally {
      await late.end();
    }
  }, 180_000);
});
