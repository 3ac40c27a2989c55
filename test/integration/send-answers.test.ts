/**
 * `homelab-cmd send` accepts only its own answer (docs/security.md § Answers that cannot be faked):
 * forged results on its topics — another host, another id, a reply without its correlation data — are
 * ignored. A real broker without ACLs (where anyone may write anything), a real agent, the real CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/agent.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';

const h = new Harness();
let forger: TestClient;
const host = 'forge-host';
beforeAll(async () => {
  await h.start();
  forger = await TestClient.connect(h.url);
  await forger.sub(`homelab/${host}/cmd/#`);
  await h.agent(host, { slowfail: { argv: ['sh', '-c', 'sleep 2; echo real; exit 3'] } });
});
afterAll(async () => {
  await forger.end();
  await h.stop();
});

describe('send ignores forged results', () => {
  it('a succeeded from the wrong host, a result of another id and a reply without its correlation data change nothing', async () => {
    const send = spawnCli(['send', host, 'slowfail', '--id', 'f-1', '--url', h.url, '--wait', '30']);
    const req = await forger.wait((m) => m.topic === `homelab/${host}/cmd/slowfail`, 15_000, 'the request');
    const responseTopic = req.packet.properties?.responseTopic ?? `homelab/${host}/reply/none`;
    const fake = (o: Record<string, unknown>) =>
      JSON.stringify({ exit_code: 0, stdout: 'forged\n', stderr: '', ...o });
    await forger.pub(
      `homelab/${host}/result/f-1`,
      fake({ id: 'f-1', host: 'other-host', status: 'succeeded' }),
    );
    await forger.pub(`homelab/${host}/result/f-1`, fake({ id: 'f-2', host, status: 'succeeded' }));
    await forger.pub(`homelab/${host}/result/f-1`, fake({ id: 'f-1', status: 'succeeded' }));
    await forger.pub(`homelab/${host}/result/f-1`, '["f-1","succeeded"]');
    await forger.pub(responseTopic, fake({ id: 'f-1', host, status: 'succeeded' }), {
      properties: { correlationData: Buffer.from('not-the-right-one') },
    });
    await forger.pub(responseTopic, fake({ id: 'f-1', host, status: 'succeeded' }));
    const { code } = await send.exited;
    const out = send.output();
    expect(out).not.toContain('forged');
    expect(out).toMatch(/"status": "failed"/);
    expect(out).toContain('real\\n');
    expect(code).toBe(1);
    // send asks for its reply under the host's own reply topics, with correlation data of its own.
    expect(responseTopic).toMatch(new RegExp(`^homelab/${host}/reply/[0-9a-f]{16}$`));
    expect(req.packet.properties?.correlationData?.length).toBe(16);
  }, 60_000);

  it('the real reply, with its correlation data, is accepted', async () => {
    const send = spawnCli(['send', host, 'slowfail', '--id', 'f-3', '--url', h.url, '--wait', '30']);
    const { code } = await send.exited;
    expect(send.output()).toMatch(/"id": "f-3"[\s\S]*"status": "failed"/);
    expect(code).toBe(1);
  }, 60_000);
});
