/**
 * The command pipeline end to end: a real broker, a real agent, real child
 * processes (fake systemctl/pihole scripts on a test PATH where the real ones
 * cannot run here).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calls, fakeBin, isDead, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/wait.js';

const h = new Harness();
beforeAll(() => h.start());
afterAll(() => h.stop());

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const echo = {
  argv: ['echo', '{message}'],
  params: { message: { type: 'string', pattern: '^[A-Za-z0-9 ]{1,40}$', default: 'hello' } },
  pattern: '^echo (?<message>[A-Za-z0-9 ]{1,40})$',
  button: true,
};

describe('intake and results', () => {
  const host = 'pipe-intake';
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    const bin = fakeBin(dir, 'systemctl', 'echo "restarted $2"');
    await h.agent(
      host,
      {
        echo,
        restart_service: {
          argv: ['systemctl', 'restart', '{unit}'],
          params: { unit: { type: 'string', pattern: '^[a-zA-Z0-9_.@-]{1,64}$' } },
          pattern: '^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$',
        },
        fails: { argv: ['sh', '-c', 'echo oops >&2; exit 3'] },
        missing: { argv: ['no-such-binary-homelab-xyz'] },
        level: { argv: ['echo', '{n}'], params: { n: { type: 'integer', min: 1, max: 5 } } },
      },
      { binDir: bin },
    );
  });

  it('an empty payload presses the action: agent-made UUID id, succeeded, stdout captured', async () => {
    const r = await h.press(host, 'echo');
    expect(r).toMatchObject({
      host,
      action: 'echo',
      status: 'succeeded',
      exit_code: 0,
      stdout: 'hello\n',
      stderr: '',
      stdout_truncated: false,
      stderr_truncated: false,
    });
    expect(r.id).toMatch(UUID_RE);
    expect(Date.parse(r.executed_at!)).toBeLessThanOrEqual(Date.parse(r.completed_at!));
    expect(r.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('a quick command publishes only its final result on its topic (no `running` to wait behind)', async () => {
    const r = await h.request(host, { id: 'quick-1', action: 'echo' });
    expect(r.status).toBe('succeeded');
    expect(h.seen(host, 'quick-1').map((x) => x.status)).toEqual(['succeeded']);
  });

  it("HA's PRESS (any non-JSON text) is a press too", async () => {
    expect((await h.press(host, 'echo', 'PRESS')).status).toBe('succeeded');
  });

  it('a request object with typed params runs exactly the whitelisted argv', async () => {
    const r = await h.request(host, { action: 'restart_service', params: { unit: 'nginx.service' } });
    expect(r.status).toBe('succeeded');
    expect(r.stdout).toBe('restarted nginx.service\n');
    expect(calls(dir)).toContain('systemctl restart nginx.service');
  });

  it('results are retained on P/H/result/ID with MQTT 5 expiry, and the latest on P/H/result', async () => {
    const r = await h.request(host, { id: 'retained-check', action: 'echo' });
    const perId = h.ctl.on(`homelab/${host}/result/retained-check`).at(-1)!;
    expect(perId.packet.properties?.messageExpiryInterval).toBeGreaterThan(86_000);
    const late = await (await import('../helpers/mqtt.js')).TestClient.connect(h.url);
    await late.sub(`homelab/${host}/result/retained-check`, `homelab/${host}/result`);
    const again = await late.waitJson(`homelab/${host}/result/retained-check`);
    expect(again).toEqual(r);
    expect((await late.wait((m) => m.topic === `homelab/${host}/result`)).packet.retain).toBe(true);
    await late.end();
  });

  it('P/H/cmd takes an action object, or a raw command matched against the patterns', async () => {
    expect(
      (
        await h.request(
          host,
          { action: 'echo', params: { message: 'via cmd' } },
          { topic: `homelab/${host}/cmd` },
        )
      ).stdout,
    ).toBe('via cmd\n');
    const raw = await h.request(
      host,
      { command: 'systemctl restart sshd.service' },
      { topic: `homelab/${host}/cmd` },
    );
    expect(raw).toMatchObject({
      status: 'succeeded',
      action: 'restart_service',
      stdout: 'restarted sshd.service\n',
    });
  });

  it('HomelabCmd aliases: numeric action_id, action_type, parameters, timeout_seconds', async () => {
    const r = await h.request(
      host,
      { action_id: 4242, action_type: 'echo', parameters: { message: 'alias' }, timeout_seconds: 3 },
      { topic: `homelab/${host}/cmd` },
    );
    expect(r).toMatchObject({ id: '4242', action: 'echo', status: 'succeeded', stdout: 'alias\n' });
  });

  it('echoes transaction in the result', async () => {
    expect((await h.request(host, { action: 'echo', transaction: 'nodered-7' })).transaction).toBe(
      'nodered-7',
    );
    const bad = await h.request(
      host,
      { action: 'nope', transaction: 'nodered-8' },
      { topic: `homelab/${host}/cmd` },
    );
    expect(bad).toMatchObject({ status: 'rejected', error_code: 'unknown_action', transaction: 'nodered-8' });
  });

  it('integer params accept a JSON integer or a decimal string, within min/max', async () => {
    expect((await h.request(host, { action: 'level', params: { n: 3 } })).stdout).toBe('3\n');
    expect((await h.request(host, { action: 'level', params: { n: '4' } })).stdout).toBe('4\n');
    const r = await h.request(host, { action: 'level', params: { n: 9 } });
    expect(r).toMatchObject({ status: 'rejected', error_code: 'invalid_params', exit_code: -1 });
    expect(r.error).toContain('maximum is 5');
  });

  it.each([
    [
      'unknown_action',
      { action: 'reboot_everything' },
      /no action "reboot_everything" — known actions: echo, fails, level, missing, restart_service/,
    ],
    [
      'invalid_params',
      { action: 'restart_service', params: { unit: 'x; rm -rf /' } },
      /does not match its pattern/,
    ],
    ['invalid_params', { action: 'restart_service', params: { unit: '--force' } }, /begin with "-"/],
    ['invalid_params', { action: 'restart_service' }, /param "unit" is required/],
    ['invalid_params', { action: 'echo', params: { msg: 'typo' } }, /unknown param\(s\) "msg"/],
    ['invalid_request', { action: 'echo', timeout: 9999 }, /more than action "echo" allows/],
    ['invalid_request', { action: 'echo', colour: 'red' }, /unknown field\(s\) "colour"/],
    ['expired', { action: 'echo', ts: Date.now() - 120_000, ttl: 10 }, /expired/],
  ])('rejects with %s: %j', async (code, body, message) => {
    const r = await h.request(host, body as Record<string, unknown>);
    expect(r).toMatchObject({ status: 'rejected', error_code: code, exit_code: -1, host });
    expect(r.error).toMatch(message);
  });

  it('rejects a raw command that matches no pattern as not_whitelisted, and runs nothing', async () => {
    const before = calls(dir).length;
    const r = await h.request(
      host,
      { command: 'systemctl restart nginx; reboot' },
      { topic: `homelab/${host}/cmd` },
    );
    expect(r).toMatchObject({ status: 'rejected', error_code: 'not_whitelisted' });
    expect(calls(dir).length).toBe(before);
  });

  it('a payload starting with "{" must be valid JSON (invalid_request, with a fresh id)', async () => {
    const before = h.ctl.messages.length;
    await h.ctl.pub(`homelab/${host}/cmd/echo`, '  {"id": "broken", ');
    const m = await h.ctl.wait(
      (x) => h.ctl.messages.indexOf(x) >= before && x.topic === `homelab/${host}/result`,
    );
    const r = JSON.parse(m.text);
    expect(r).toMatchObject({ status: 'rejected', error_code: 'invalid_request', action: 'echo' });
    expect(r.error).toMatch(/not valid JSON/);
  });

  it('a payload over 64 KiB is rejected without being parsed', async () => {
    const before = h.ctl.messages.length;
    await h.ctl.pub(`homelab/${host}/cmd/echo`, `{"id":"big","pad":"${'x'.repeat(70_000)}"}`);
    const m = await h.ctl.wait(
      (x) => h.ctl.messages.indexOf(x) >= before && x.topic === `homelab/${host}/result`,
    );
    expect(JSON.parse(m.text)).toMatchObject({ status: 'rejected', error_code: 'invalid_request' });
    expect(JSON.parse(m.text).id).not.toBe('big');
  });

  it('a retained command is never run: retained_ignored', async () => {
    const before = calls(dir).length;
    const r = await h.request(
      host,
      { id: 'retained-1', action: 'restart_service', params: { unit: 'cron' } },
      { retain: true },
    );
    expect(r).toMatchObject({ id: 'retained-1', status: 'rejected', error_code: 'retained_ignored' });
    expect(calls(dir).length).toBe(before);
    await h.ctl.pub(`homelab/${host}/cmd/restart_service`, '', { retain: true }); // clear it
  });

  it('non-zero exit: failed / exit_nonzero with the real code and stderr', async () => {
    const r = await h.request(host, { action: 'fails' });
    expect(r).toMatchObject({ status: 'failed', error_code: 'exit_nonzero', exit_code: 3, stderr: 'oops\n' });
  });

  it('a missing executable: failed / not_found, exit 127', async () => {
    const r = await h.request(host, { action: 'missing' });
    expect(r).toMatchObject({ status: 'failed', error_code: 'not_found', exit_code: 127 });
  });

  it('MQTT 5 response topic gets the final result with its correlation data, not retained', async () => {
    const before = h.ctl.messages.length;
    await h.ctl.sub(`homelab/${host}/reply/t1`);
    await h.ctl.pub(`homelab/${host}/cmd/echo`, JSON.stringify({ params: { message: 'rr' } }), {
      properties: { responseTopic: `homelab/${host}/reply/t1`, correlationData: Buffer.from('c-1') },
    });
    const reply = await h.ctl.wait(
      (m) => h.ctl.messages.indexOf(m) >= before && m.topic === `homelab/${host}/reply/t1`,
    );
    expect(JSON.parse(reply.text)).toMatchObject({ status: 'succeeded', stdout: 'rr\n' });
    expect(reply.packet.properties?.correlationData?.toString()).toBe('c-1');
    expect(reply.packet.retain).toBe(false);
  });
});

describe('execution is off by default', () => {
  it('answers execution_disabled and runs nothing', async () => {
    const dir = tempDir();
    const bin = fakeBin(dir, 'pihole');
    await h.agent(
      'pipe-disabled',
      { restart_dns: { argv: ['pihole', 'restartdns'] } },
      { binDir: bin, execution: { enabled: false } },
    );
    const r = await h.request('pipe-disabled', { action: 'restart_dns' });
    expect(r).toMatchObject({ status: 'rejected', error_code: 'execution_disabled' });
    expect(r.error).toMatch(/set execution.enabled: true/);
    expect(calls(dir)).toEqual([]);
  });
});

describe('timeouts and output caps', () => {
  const host = 'pipe-limits';
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    await h.agent(
      host,
      {
        hang: {
          argv: ['sh', '-c', 'sleep 300 & echo $! > "$PIDFILE"; echo started; wait'],
          env: { PIDFILE: path.join(dir, 'grandchild.pid') },
          timeout: '10s',
        },
        flood: {
          argv: [
            'sh',
            '-c',
            'head -c 1048576 /dev/zero | tr "\\0" a; head -c 20000 /dev/zero | tr "\\0" b >&2',
          ],
        },
        bad_utf8: { argv: ['printf', '\\377\\376ok'] },
      },
      { execution: { max_output: 10_000 } },
    );
  });

  it('kills the whole process group on timeout, grandchild included: timed_out, exit -1', async () => {
    const r = await h.request(host, { action: 'hang', timeout: 1 });
    expect(r).toMatchObject({
      status: 'timed_out',
      error_code: 'timeout',
      exit_code: -1,
      stdout: 'started\n',
    });
    const pid = Number(readFileSync(path.join(dir, 'grandchild.pid'), 'utf8'));
    expect(pid).toBeGreaterThan(0);
    // SIGTERM reached the group at the timeout; give the kernel a moment to deliver it.
    await until(() => isDead(pid), 5000, `grandchild ${pid} to die`);
  });

  it('caps stdout and stderr at max_output bytes each, with the truncated flags', async () => {
    const r = await h.request(host, { action: 'flood' });
    expect(r.status).toBe('succeeded');
    expect(Buffer.byteLength(r.stdout)).toBe(10_000);
    expect(r.stdout).toBe('a'.repeat(10_000));
    expect(r).toMatchObject({ stdout_truncated: true, stderr_truncated: true });
    expect(Buffer.byteLength(r.stderr)).toBe(10_000);
  });

  it('replaces invalid UTF-8 instead of failing', async () => {
    const r = await h.request(host, { action: 'bad_utf8' });
    expect(r.stdout).toBe('\uFFFD\uFFFDok');
  });
});

describe('concurrency and the queue', () => {
  it('runs at most `concurrency`, queues at most `queue`, answers the rest busy at once', async () => {
    const host = 'pipe-busy';
    const dir = tempDir();
    const gate = path.join(dir, 'release');
    const bin = fakeBin(dir, 'blocker', `while [ ! -f "${gate}" ]; do sleep 0.02; done; echo done`);
    await h.agent(
      host,
      { block: { argv: ['blocker'] } },
      { binDir: bin, execution: { concurrency: 1, queue: 1 }, extra: { heartbeat: { interval: '100ms' } } },
    );
    await h.ctl.sub(`homelab/${host}/heartbeat`);
    const first = h.finalFor(host, 'b1');
    const second = h.finalFor(host, 'b2');
    await h.ctl.pub(`homelab/${host}/cmd/block`, JSON.stringify({ id: 'b1' }));
    await h.ctl.waitJson(`homelab/${host}/result/b1`, (r: { status: string }) => r.status === 'running');
    await h.ctl.pub(`homelab/${host}/cmd/block`, JSON.stringify({ id: 'b2' }));
    const third = await h.request(host, { id: 'b3', action: 'block' });
    expect(third).toMatchObject({ status: 'rejected', error_code: 'busy' });
    // The heartbeat shows it: one running, one waiting, one rejected.
    const hb = await h.ctl.waitJson<{ running: number; queued: number; stats: { rejected: number } }>(
      `homelab/${host}/heartbeat`,
      (x) => x.running === 1 && x.queued === 1 && x.stats.rejected === 1,
    );
    expect(hb).toMatchObject({ running: 1, queued: 1 });
    writeFileSync(gate, '');
    expect((await first).status).toBe('succeeded');
    expect((await second).status).toBe('succeeded');
    expect(calls(dir)).toHaveLength(2);
    const after = await h.ctl.waitJson<{
      running: number;
      queued: number;
      stats: { executed: number; succeeded: number };
    }>(`homelab/${host}/heartbeat`, (x) => x.stats.succeeded === 2);
    expect(after).toMatchObject({ running: 0, queued: 0, stats: { executed: 2, succeeded: 2 } });
    // `running` came before the final result on the same id.
    expect(h.seen(host, 'b1').map((r) => r.status)).toEqual(['running', 'succeeded']);
  });
});

describe('at most once per id', () => {
  it('a repeated id gets the stored result and is not run again — also after an agent restart', async () => {
    const host = 'pipe-dedup';
    const dir = tempDir();
    const bin = fakeBin(dir, 'pihole', 'echo restarted');
    const actions = { restart_dns: { argv: ['pihole', 'restartdns'] } };
    const { agent, stateDir } = await h.agent(host, actions, { binDir: bin });
    const r1 = await h.request(host, { id: 'once-1', action: 'restart_dns' });
    expect(r1.status).toBe('succeeded');
    const before = h.ctl.messages.length;
    await h.ctl.pub(`homelab/${host}/cmd/restart_dns`, JSON.stringify({ id: 'once-1' }));
    const again = await h.ctl.wait(
      (m) => h.ctl.messages.indexOf(m) >= before && m.topic === `homelab/${host}/result/once-1`,
    );
    expect(JSON.parse(again.text)).toEqual(r1);
    expect(calls(dir)).toEqual(['pihole restartdns']);

    await h.stopAgent(agent);
    await h.agent(host, actions, { binDir: bin, stateDir });
    const before2 = h.ctl.messages.length;
    await h.ctl.pub(`homelab/${host}/cmd/restart_dns`, JSON.stringify({ id: 'once-1' }));
    const afterRestart = await h.ctl.wait(
      (m) => h.ctl.messages.indexOf(m) >= before2 && m.topic === `homelab/${host}/result/once-1`,
    );
    expect(JSON.parse(afterRestart.text)).toEqual(r1);
    expect(calls(dir)).toEqual(['pihole restartdns']);
    expect(existsSync(path.join(stateDir, 'journal.jsonl'))).toBe(true);
  });

  it('a rejected id is not spent: fixed and sent again, it runs', async () => {
    const host = 'pipe-retry';
    const dir = tempDir();
    const bin = fakeBin(dir, 'systemctl');
    await h.agent(
      host,
      {
        restart_service: {
          argv: ['systemctl', 'restart', '{unit}'],
          params: { unit: { type: 'string', pattern: '^[a-z]{1,10}$' } },
        },
      },
      { binDir: bin },
    );
    expect(
      (await h.request(host, { id: 'fixme', action: 'restart_service', params: { unit: 'BAD!' } }))
        .error_code,
    ).toBe('invalid_params');
    expect(
      (await h.request(host, { id: 'fixme', action: 'restart_service', params: { unit: 'nginx' } })).status,
    ).toBe('succeeded');
    expect(calls(dir)).toEqual(['systemctl restart nginx']);
  });

  it('clears its own oldest per-id results beyond the last 100', async () => {
    const host = 'pipe-prune';
    await h.agent(host, { ok: { argv: ['true'] } }, { execution: { concurrency: 4, queue: 200 } });
    const ids = Array.from({ length: 102 }, (_, i) => `prune-${i}`);
    const finals = ids.map((id) => h.finalFor(host, id, 30_000));
    for (const id of ids) await h.ctl.pub(`homelab/${host}/cmd/ok`, JSON.stringify({ id }));
    await Promise.all(finals);
    // The oldest final results (in the order they finished: 4 run at once) are cleared with an empty
    // retained payload once 100 newer ones exist.
    const byFinish = h.ctl.messages
      .filter((m) => m.topic === `homelab/${host}/result` && m.text !== '')
      .map((m) => (JSON.parse(m.text) as { id: string }).id);
    expect(byFinish).toHaveLength(102);
    const [first, second, third] = byFinish as [string, string, string];
    await h.ctl.wait(
      (m) => m.topic === `homelab/${host}/result/${first}` && m.text === '',
      10_000,
      `${first} cleared`,
    );
    await h.ctl.wait(
      (m) => m.topic === `homelab/${host}/result/${second}` && m.text === '',
      10_000,
      `${second} cleared`,
    );
    expect(h.ctl.on(`homelab/${host}/result/${third}`).some((m) => m.text === '')).toBe(false);
  });
});

describe('stopping', () => {
  it('a request queued at shutdown is shutting_down (not run); a running one past the grace is interrupted', async () => {
    const host = 'pipe-stop';
    const dir = tempDir();
    const bin = fakeBin(dir, 'blocker', `while [ ! -f "${dir}/gate" ]; do sleep 0.02; done`);
    const opts = { binDir: bin, execution: { concurrency: 1, queue: 5, shutdown_grace: '300ms' } };
    const { agent, stateDir } = await h.agent(host, { block: { argv: ['blocker'] } }, opts);
    const running = h.finalFor(host, 's1');
    const queued = h.finalFor(host, 's2');
    await h.ctl.pub(`homelab/${host}/cmd/block`, JSON.stringify({ id: 's1' }));
    await h.ctl.waitJson(`homelab/${host}/result/s1`, (r: { status: string }) => r.status === 'running');
    await h.ctl.pub(`homelab/${host}/cmd/block`, JSON.stringify({ id: 's2' }));
    // s2 must be queued before we stop: the agent journals an accepted request before queueing it.
    await until(
      () => readFileSync(`${stateDir}/journal.jsonl`, 'utf8').includes('"s2"'),
      5000,
      's2 journaled',
    );
    await h.stopAgent(agent);
    expect(await queued).toMatchObject({ status: 'rejected', error_code: 'shutting_down' });
    expect(await running).toMatchObject({ status: 'interrupted', error_code: 'interrupted', exit_code: -1 });
    expect(calls(dir)).toHaveLength(1);

    // After a restart neither id runs: each keeps its one final (shutting_down is journaled like a result).
    writeFileSync(`${dir}/gate`, '');
    await h.agent(host, { block: { argv: ['blocker'] } }, { ...opts, stateDir });
    expect(await h.request(host, { id: 's2', action: 'block' })).toMatchObject({
      status: 'rejected',
      error_code: 'shutting_down',
    });
    const again = h.ctl.next((m) => m.topic === `homelab/${host}/result/s1`);
    await h.ctl.pub(`homelab/${host}/cmd/block`, JSON.stringify({ id: 's1' }));
    expect(JSON.parse((await again).text).status).toBe('interrupted');
    expect(calls(dir)).toHaveLength(1);
  });
});
