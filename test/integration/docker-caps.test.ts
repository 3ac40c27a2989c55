/**
 * The Docker image's agent without a Docker engine (docs/security.md § In a container): root with
 * only the capabilities docker/compose.yaml's cap_add gives it, no-new-privileges, as
 * `setpriv --bounding-set` makes it. A real action runs as the run user and cannot read the
 * root-owned 0400 password file, the 0600 config or state_dir; a timeout still kills it; and
 * without DAC_OVERRIDE or CHOWN no action starts, which is why compose adds them.
 * Root and util-linux setpriv only, as this machine's tests run.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupUser } from '../../src/exec/isolation.js';
import { BIN, REPO, tempDir, writeConfig } from '../helpers/fixtures.js';
import { freePort } from '../helpers/net.js';
import { until } from '../helpers/wait.js';

const run = promisify(execFile);
const ROOT = process.getuid?.() === 0;
const SETPRIV = spawnSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).stdout.trim();
const RUN_USER = `hlcdock${process.pid % 100000}`;
const compose = parse(readFileSync(path.join(REPO, 'docker/compose.yaml'), 'utf8')) as {
  services: { agent: { cap_add?: string[] } };
};
const CAPS = compose.services.agent.cap_add ?? [];
let dir: string;

beforeAll(() => {
  if (!ROOT || !SETPRIV) return;
  spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', RUN_USER]);
  dir = tempDir('hc-docker-');
  chmodSync(dir, 0o755); // open: only the files' own owners and modes keep the run user out
});
afterAll(() => {
  if (!ROOT || !SETPRIV) return;
  spawnSync('userdel', [RUN_USER]);
  spawnSync('groupdel', [RUN_USER]);
});

interface Started {
  proc: ChildProcess;
  port: number;
  tmp: string;
  files: { pw: string; config: string; state: string };
}

/** `up` as root with only `caps` (compose's cap_drop: ALL + cap_add), files laid out as docs/install.md § Docker says. */
async function startAgent(name: string, caps: readonly string[]): Promise<Started> {
  const base = path.join(dir, name);
  const tmp = path.join(base, 'tmp');
  const state = path.join(base, 'state');
  mkdirSync(tmp, { recursive: true, mode: 0o1777 });
  chmodSync(tmp, 0o1777);
  chmodSync(base, 0o755);
  mkdirSync(state, { mode: 0o700 });
  const pw = path.join(base, 'agent.pw');
  writeFileSync(pw, 'secret\n', { mode: 0o400 });
  const files = { pw, state, config: path.join(base, 'agent.yaml') };
  const probe = `id -u; for f in ${pw} ${files.config}; do cat "$f" >/dev/null && echo "read $f"; done; ls ${state} >/dev/null && echo listed state; echo x > out && echo wrote cwd`;
  writeConfig(base, {
    host: name,
    state_dir: state,
    discovery: { enabled: false },
    execution: { enabled: true, run_as: RUN_USER, timeout: '20s' },
    actions: {
      probe: { argv: ['sh', '-c', probe] },
      sleeper: { argv: ['sh', '-c', 'echo x > f; sleep 60'], timeout: '2s' },
    },
  });
  chmodSync(files.config, 0o600);
  const port = await freePort();
  const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  const agent = spawn(
    SETPRIV,
    [
      `--bounding-set=${bounding}`,
      '--inh-caps=-all',
      '--no-new-privs',
      '--',
      process.execPath,
      BIN,
      'up',
      '--config',
      files.config,
      '--port',
      String(port),
    ],
    {
      cwd: REPO,
      env: { ...process.env, XDG_RUNTIME_DIR: base, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  agent.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  agent.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  await until(() => out.includes('is online at') || agent.exitCode !== null, 30_000, `${name} online`);
  if (agent.exitCode !== null) throw new Error(`the agent exited: ${out}`);
  return { proc: agent, port, tmp, files };
}

async function send(a: Started, host: string, action: string): Promise<Record<string, unknown>> {
  const r = await run(
    process.execPath,
    [BIN, 'send', host, action, '--url', `mqtt://127.0.0.1:${a.port}`, '--wait', '40'],
    { cwd: REPO },
  ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

async function stop(a: Started): Promise<void> {
  if (a.proc.exitCode === null) {
    a.proc.kill('SIGTERM');
    await new Promise((r) => a.proc.once('exit', r));
  }
}

describe.skipIf(!ROOT || !SETPRIV)("the Docker image's agent: root with only compose.yaml's cap_add", () => {
  it('compose adds exactly SETUID, SETGID, KILL, CHOWN and DAC_OVERRIDE', () => {
    expect([...CAPS].sort()).toEqual(['CHOWN', 'DAC_OVERRIDE', 'KILL', 'SETGID', 'SETUID']);
  });

  it('runs an action as the run user, who cannot read the password file, the config or state_dir; a timeout kills it', async () => {
    const a = await startAgent('dockfull', CAPS);
    try {
      const status = readFileSync(`/proc/${a.proc.pid}/status`, 'utf8');
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      const r = await send(a, 'dockfull', 'probe');
      expect(r.status, JSON.stringify(r)).toBe('succeeded');
      expect(String(r.stdout).split('\n')[0]).toBe(String(lookupUser(RUN_USER)!.uid));
      expect(r.stdout).toContain('wrote cwd');
      expect(r.stdout).not.toMatch(/read |listed state/);
      expect(r.stderr).toContain(`${a.files.pw}: Permission denied`);
      expect(r.stderr).toContain(`${a.files.config}: Permission denied`);
      const slept = await send(a, 'dockfull', 'sleeper');
      expect(slept.status).toBe('timed_out');
      // Killed at its 2 s timeout, not after its 60 s sleep: the agent may signal another user's processes (KILL).
      expect(Number(slept.duration_ms)).toBeLessThan(30_000);
      // The work directories the run user wrote into are gone too; what is left are spares made ahead
      // (src/exec/work-dirs.ts): empty, the agent's own, mode 0700 — nothing the run user could enter.
      const ownSpare = (d: string) => {
        const st = statSync(path.join(a.tmp, d));
        return st.uid === 0 && (st.mode & 0o777) === 0o700 && readdirSync(path.join(a.tmp, d)).length === 0;
      };
      await until(() => readdirSync(a.tmp).every(ownSpare), 20_000, 'work directories removed');
    } finally {
      await stop(a);
    }
    // And a stop removes the spares.
    expect(readdirSync(a.tmp)).toEqual([]);
  }, 120_000);

  for (const missing of ['DAC_OVERRIDE', 'CHOWN']) {
    it(`without ${missing} no action starts (why compose adds it)`, async () => {
      const name = `dockno${missing.toLowerCase().replace('_', '')}`;
      const a = await startAgent(
        name,
        CAPS.filter((c) => c !== missing),
      );
      try {
        const r = await send(a, name, 'probe');
        expect(r.status).toBe('failed');
        expect(r.stdout ?? '').toBe('');
      } finally {
        await stop(a);
      }
    }, 120_000);
  }
});
