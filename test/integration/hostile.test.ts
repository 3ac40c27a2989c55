/**
 * Messages that once stopped a real agent process for good (docs/security.md § What the agent
 * withstands): the process stays up, answers each command, and runs the next valid request.
 */
import type { IPublishPacket } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Pipeline } from '../../src/agent/pipeline.js';
import type { Result } from '../../src/core/result.js';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { isDead } from '../helpers/fixtures.js';
import { withDeadline } from '../helpers/wait.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const h = new Harness();
beforeAll(() => h.start());
afterAll(() => h.stop());
afterEach(() => vi.restoreAllMocks());

const nested = (depth: number, leaf: string): string => '['.repeat(depth) + leaf + ']'.repeat(depth);

describe('a real agent process under the pen test messages', () => {
  let agent: AgentProcess;
  let dir: string;
  const host = 'hostile-1';

  beforeAll(async () => {
    dir = tempDir();
    const bin = fakeBin(dir, 'backup');
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: h.url },
      execution: { enabled: true, path: testPath(bin) },
      actions: {
        backup: {
          argv: ['backup', '{mode}'],
          button: true,
          params: { mode: { type: 'enum', values: ['daily', 'weekly'] } },
        },
      },
    });
    await h.ctl.sub(`homelab/${host}/status`);
    agent = spawnCli(['agent', '--config', file]);
    await h.ctl.wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online', 20_000, 'online');
  });
  afterAll(async () => {
    agent.proc.kill('SIGTERM');
    await withDeadline(agent.exited, 20_000, 'the agent to stop');
  });

  it('survives them all, answers the command one, and still runs a valid request', async () => {
    // ~24 KB, QoS 1: before, a stack overflow in the alias check, and again at every restart.
    const bomb = `{"id":"pen-1","action":"backup","params":{"a":${nested(6000, '1')}},"parameters":{"a":${nested(6000, '2')}}}`;
    // Refused before parsing, so under an id of the agent's (the sender's is not read): P/H/result has it.
    const answered = h.ctl.next(
      (m) => m.topic === `homelab/${host}/result` && m.text.includes('nested more than 32 levels'),
      20_000,
      'the refusal of the nested request',
    );
    await h.ctl.pub(`homelab/${host}/cmd`, bomb);
    const r = JSON.parse((await answered).text) as Result;
    expect(r).toMatchObject({ status: 'rejected', error_code: 'invalid_request' });
    for (const topic of [
      `homelab/${host}/param/constructor/x/set`,
      `homelab/${host}/param/__proto__/x/set`,
      `homelab/${host}/param/backup/constructor/set`,
      `homelab/${host}/param/backup/__proto__/set`,
    ])
      await h.ctl.pub(topic, 'weekly');
    const ok = await h.request(
      host,
      { id: 'after-pen', action: 'backup', params: { mode: 'weekly' } },
      { ms: 20_000 },
    );
    expect(ok.status).toBe('succeeded');
    expect(isDead(agent.proc.pid as number)).toBe(false);
    expect(calls(dir)).toEqual(['backup weekly']);
  });
});

describe('the guard in the wiring', () => {
  it('a command handler that throws is answered invalid_request, and the next request runs', async () => {
    const dir = tempDir();
    const bin = fakeBin(dir, 'uptime');
    await h.agent('guarded-1', { up: { argv: ['uptime'] } }, { binDir: bin });
    const original = Pipeline.prototype.handle;
    vi.spyOn(Pipeline.prototype, 'handle').mockImplementationOnce(function (
      this: Pipeline,
      _a: string | undefined,
      _p: Buffer,
      _k: IPublishPacket,
    ) {
      throw new RangeError('Maximum call stack size exceeded');
    });
    const refused = h.ctl.next(
      (m) => m.topic === 'homelab/guarded-1/result' && m.text.includes('"rejected"'),
      10_000,
      'the refusal',
    );
    await h.ctl.pub('homelab/guarded-1/cmd/up', JSON.stringify({ id: 'boom-1' }));
    const r = JSON.parse((await refused).text) as Result;
    expect(r).toMatchObject({ status: 'rejected', error_code: 'invalid_request', action: 'up' });
    expect(r.error).toMatch(/could not handle this message \(Maximum call stack size exceeded\)/);
    expect(r.id).not.toBe('boom-1');
    expect(Pipeline.prototype.handle).not.toBe(original);
    const ok = await h.request('guarded-1', { id: 'boom-2', action: 'up' });
    expect(ok.status).toBe('succeeded');
  });
});

describe('check-config and a YAML alias bomb', () => {
  it('exits non-zero with one line naming the line, no stack trace', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bomb.yaml');
    const rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [i, c] of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].entries()) {
      const prev = String.fromCharCode('a'.charCodeAt(0) + i);
      rows.push(`${c}: &${c} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    writeFileSync(file, `${rows.join('\n')}\n`);
    const out = await runCli(['check-config', '--config', file]);
    expect(out.code).not.toBe(0);
    const text = out.stdout + out.stderr;
    expect(text).not.toMatch(/ReferenceError|\n\s+at /);
    const issues = text.split('\n').filter((l) => l.includes('(yaml line'));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/\(yaml line 1, column \d+\): YAML anchor &a: anchors, aliases and merge keys/);
  });
});
