/**
 * One final per id across a stop (docs/mqtt-api.md § Error codes, `shutting_down`): a request a
 * stopping agent does not run is answered `rejected` / `shutting_down`, and that answer is the id's
 * final. Sent again after the restart — as the broker's session redelivers a request whose PUBACK was
 * lost in the stop, or as a user retries — it gets the same answer and never runs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBroker } from '../../src/broker/broker.js';
import { startTestBroker } from '../helpers/harness.js';
import type { Result } from '../../src/core/result.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { until, withDeadline } from '../helpers/wait.js';

let broker: RunningBroker;
let ctl: TestClient;
const procs: AgentProcess[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  ctl = await TestClient.connect(`mqtt://127.0.0.1:${broker.port}`);
  await ctl.sub('homelab/+/result/#', 'homelab/+/status', 'homelab/+/reply/#');
});
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  }
});
afterAll(async () => {
  await ctl.end();
  await broker.close();
});

const finals = (host: string, id: string) =>
  ctl
    .on(`homelab/${host}/result/${id}`)
    .filter((m) => m.text !== '')
    .map((m) => JSON.parse(m.text) as Result)
    .filter((r) => r.status !== 'running');

describe('a request a stopping agent does not run', () => {
  it('is answered shutting_down once; sent again after the restart it gets that answer again and never runs', async () => {
    const host = 'sd-stop';
    const dir = tempDir();
    // `slow` holds the one slot until the test lets it finish; `quick` only records that it ran.
    fakeBin(dir, 'slow', `while [ ! -e "${dir}/release" ]; do sleep 0.05; done`);
    fakeBin(dir, 'quick');
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: `mqtt://127.0.0.1:${broker.port}`, keepalive: '1s' },
      execution: {
        enabled: true,
        path: testPath(`${dir}/bin`),
        concurrency: 1,
        shutdown_grace: '60s',
      },
      actions: {
        slow: { argv: ['slow'] },
        quick: { argv: ['quick', '{tag}'], params: { tag: { type: 'string', pattern: '[a-z-]+' } } },
      },
    });
    const start = () => {
      const a = spawnCli(['agent', '--config', file]);
      procs.push(a);
      return a;
    };
    const online = (from: number) =>
      ctl.wait(
        (m) => ctl.messages.indexOf(m) >= from && m.topic === `homelab/${host}/status` && m.text === 'online',
        20_000,
        `${host} online`,
      );

    const first = start();
    await online(0);
    await ctl.pub(`homelab/${host}/cmd/slow`, JSON.stringify({ id: 'sd-run' }));
    await until(() => calls(dir).some((c) => c.startsWith('slow')), 15_000, 'slow to start');
    // Queued behind it: accepted, journaled, never started.
    await ctl.pub(
      `homelab/${host}/cmd/quick`,
      JSON.stringify({ id: 'sd-queued', params: { tag: 'queued' } }),
      {
        properties: { responseTopic: `homelab/${host}/reply/q`, correlationData: Buffer.from('corr-q') },
      },
    );
    await until(
      () =>
        existsSync(`${dir}/state/journal.jsonl`) &&
        readFileSync(`${dir}/state/journal.jsonl`, 'utf8').includes('"sd-queued"'),
      15_000,
      'the queued request to be journaled',
    );
    first.proc.kill('SIGTERM');
    await until(() => finals(host, 'sd-queued').length > 0, 15_000, 'the queued request to be refused');
    // Arrives while the agent waits for `slow` within its grace: refused, not run.
    await ctl.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id: 'sd-late', params: { tag: 'late' } }));
    await until(() => finals(host, 'sd-late').length > 0, 15_000, 'the late request to be refused');
    for (const id of ['sd-queued', 'sd-late'])
      expect(finals(host, id)).toEqual([
        expect.objectContaining({ status: 'rejected', error_code: 'shutting_down' }),
      ]);
    expect(finals(host, 'sd-queued')[0]?.error).toMatch(/send it again with a new id/);
    // The response topic got the same final, with its correlation data.
    const reply = await ctl.wait((m) => m.topic === `homelab/${host}/reply/q`, 10_000, 'the reply');
    expect(JSON.parse(reply.text)).toMatchObject({ id: 'sd-queued', error_code: 'shutting_down' });
    expect(reply.packet.properties?.correlationData?.toString()).toBe('corr-q');
    writeFileSync(`${dir}/release`, '');
    await withDeadline(first.exited, 30_000, 'the agent to stop');

    const from = ctl.messages.length;
    const second = start();
    await online(from);
    // Both ids again, as a redelivery or a retry would bring them: the stored answer, nothing run.
    for (const id of ['sd-queued', 'sd-late'])
      await ctl.pub(`homelab/${host}/cmd/quick`, JSON.stringify({ id, params: { tag: id } }));
    await until(
      () => ['sd-queued', 'sd-late'].every((id) => finals(host, id).length >= 2),
      15_000,
      'the stored answers',
    ).catch((e: unknown) => Promise.reject(new Error(`${String(e)}\n${second.output()}`)));
    for (const id of ['sd-queued', 'sd-late'])
      expect(new Set(finals(host, id).map((r) => `${r.status}/${r.error_code}`))).toEqual(
        new Set(['rejected/shutting_down']),
      );
    expect(calls(dir).filter((c) => c.startsWith('quick'))).toEqual([]);
    // No rejection is said to stay in the outbox: this one is journaled, and it was delivered.
    expect(first.output()).not.toMatch(/stays in the outbox/);
  }, 120_000);
});
