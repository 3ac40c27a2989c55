/**
 * The agent and its children apart (docs/security.md § Commands run as
 * another user, § Limits, § Deny-list): a real action run as a throwaway run
 * user cannot read the agent's environment, config or key, nor write its
 * journal; a timeout kills setsid grandchildren too; the deny-list compares
 * canonical paths on the real file system; a hard link out of a path root is
 * refused. Root only (useradd, mknod), as this machine's tests run.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { isolationAtStart, privateFileWarnings } from '../../src/agent/private-files.js';
import { parseConfig } from '../../src/config/load.js';
import { detectIsolation, lookupUser } from '../../src/exec/isolation.js';
import { silentLogger } from '../../src/log.js';
import { startAgent } from '../helpers/agent.js';
import { calls, fakeBin, isDead, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/wait.js';

const ROOT = process.getuid?.() === 0;
const RUN_USER = `hlciso${process.pid % 100000}`;
const h = new Harness();
let dir: string;

// What a compromised command would try against the agent that started it.
const PROBE = [
  'id -u',
  'for f in "/proc/$AGENT_PID/environ" "$CONFIG" "$KEY"; do cat "$f" >/dev/null 2>&1 && echo "read $f"; done',
  'echo "{\\"id\\":\\"forged\\"}" >> "$JOURNAL" 2>/dev/null && echo "wrote journal"',
  'ls "$STATE" >/dev/null 2>&1 && echo "listed state"',
  'true',
].join('; ');

beforeAll(async () => {
  if (!ROOT) return;
  spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', RUN_USER]);
  await h.start();
  dir = tempDir();
  // Open directories: only the files' own modes stand between them and the run user.
  chmodSync(dir, 0o755);
}, 30_000);
afterAll(async () => {
  if (!ROOT) return;
  await h.stop();
  spawnSync('userdel', [RUN_USER]);
});

/** An agent whose config, key and state are real files in `dir`. */
async function agentWithFiles(
  host: string,
  runAs: string | false,
): Promise<{ agent: Agent; env: Record<'AGENT_PID' | 'CONFIG' | 'KEY' | 'STATE' | 'JOURNAL', string> }> {
  const key = path.join(dir, `${host}.key`);
  writeFileSync(key, 'k'.repeat(32), { mode: 0o600 });
  const state = path.join(dir, `${host}-state`);
  mkdirSync(state, { mode: 0o755 }); // too open: the agent must make it its own
  chmodSync(state, 0o755);
  const env = {
    AGENT_PID: String(process.pid),
    CONFIG: path.join(dir, `${host}.yaml`),
    KEY: key,
    STATE: state,
    JOURNAL: path.join(state, 'journal.jsonl'),
  };
  const config = {
    host,
    state_dir: state,
    mqtt: { url: h.url },
    execution: { enabled: true, run_as: runAs },
    security: { key_file: key },
    actions: { probe: { argv: ['sh', '-c', PROBE], env } },
  };
  writeFileSync(env.CONFIG, stringify(config), { mode: 0o600 });
  const { agent } = await startAgent(config, env.CONFIG);
  return { agent, env };
}

describe.skipIf(!ROOT)('commands run as execution.run_as', () => {
  it('cannot read the agent’s environment, config or key, nor write or list its state_dir', async () => {
    const uid = lookupUser(RUN_USER)?.uid;
    expect(uid).toBeGreaterThan(0);
    const { agent, env } = await agentWithFiles('iso-run', RUN_USER);
    try {
      const r = await h.request('iso-run', { action: 'probe' });
      expect(r.status).toBe('succeeded');
      expect(r.stdout).toBe(`${uid}\n`);
      expect((statSync(env.STATE).mode & 0o777).toString(8), 'state_dir made private at start').toBe('700');
    } finally {
      await agent.stop();
    }
  });

  it('the same probe as the agent itself (run_as: false) reads them all: the probe can tell', async () => {
    const { agent, env } = await agentWithFiles('iso-self', false);
    try {
      const r = await h.request('iso-self', { action: 'probe' });
      expect(r.stdout).toContain(`read /proc/${process.pid}/environ`);
      expect(r.stdout).toContain(`read ${env.CONFIG}`);
      expect(r.stdout).toContain(`read ${env.KEY}`);
      expect(r.stdout).toContain('wrote journal');
    } finally {
      await agent.stop();
    }
  });

  it('a configured run user that does not exist stops the start, naming the fix', () => {
    const cfg = parseConfig(
      stringify({ state_dir: `${tempDir()}/s`, execution: { enabled: true, run_as: 'no-such-user-x' } }),
      '/test/a.yaml',
    );
    expect(() => new Agent(cfg, silentLogger()).start()).toThrow(
      /run_as: user "no-such-user-x" does not exist.*useradd/,
    );
  });

  it('warns about a config with a password in it that the run user can read', () => {
    const file = path.join(dir, 'open.yaml');
    const text = 'host: x\nmqtt:\n  username: u\n  password: s3cret\n';
    writeFileSync(file, text, { mode: 0o644 });
    chmodSync(file, 0o644);
    const cfg = parseConfig(text, file);
    const user = lookupUser(RUN_USER)!;
    expect(privateFileWarnings(cfg, user)).toEqual([
      expect.stringMatching(/readable by every user.*chmod o-rwx/),
    ]);
    chmodSync(file, 0o600);
    expect(privateFileWarnings(cfg, user)).toEqual([]);
    // Without a secret of its own (like the package's example), a readable config is no leak.
    writeFileSync(file, 'host: x\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(privateFileWarnings(parseConfig('host: x\n', file), user)).toEqual([]);
  });
  it('looks the run user up once, groups and all, and checks the files against that lookup', () => {
    const report = detectIsolation(RUN_USER, process.env.PATH ?? '');
    expect(report.runUser).toEqual(lookupUser(RUN_USER));
    expect(report.runUser?.groups.length).toBeGreaterThan(0);
    expect(report.isolation.runAs?.uid).toBe(report.runUser?.uid);
    // The start's own check, through the run user's groups from that one lookup: a config readable by a
    // group the run user is in (and by no one else) is a leak only a check that knows the groups sees.
    const file = path.join(dir, 'group-readable.yaml');
    const text = stringify({
      host: 'x',
      state_dir: `${tempDir()}/s`,
      mqtt: { username: 'u', password: 's3cret' },
      execution: { enabled: true, run_as: RUN_USER },
    });
    writeFileSync(file, text, { mode: 0o640 });
    chmodSync(file, 0o640);
    chownSync(file, 0, report.runUser!.gid);
    const said: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => said.push(JSON.parse(line).msg) });
    expect(isolationAtStart(parseConfig(text, file), log).runAs?.name).toBe(RUN_USER);
    expect(said).toContainEqual(
      expect.stringMatching(/group-readable\.yaml is readable by its group .* the run user is in it/),
    );
  });
});

describe.skipIf(!ROOT)('a timeout kills what the command started with setsid', () => {
  /** Live (not zombie) processes whose command line is exactly `argv`. */
  const alive = (argv: string[]) =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8') === `${argv.join('\0')}\0` && !isDead(Number(p));
        } catch {
          return false;
        }
      });

  it.each<[string, string, Record<string, unknown>]>([
    ['as the agent (process tree in /proc)', '3001', {}],
    ['as the run user (PID namespace)', '3002', { run_as: RUN_USER }],
  ])('%s', async (_what, secs, execution) => {
    const host = `iso-setsid-${secs}`;
    const daemon = ['sh', '-c', `setsid sleep ${secs} & sleep 300`];
    await h.agent(host, { daemon: { argv: daemon, timeout: '1s' } }, { execution });
    const r = await h.request(host, { action: 'daemon' }, { ms: 20_000 });
    expect(r.status).toBe('timed_out');
    await until(
      () => alive(['sleep', secs]).length === 0,
      15_000,
      `the setsid grandchild (sleep ${secs}) to be killed`,
    );
  });
});

describe.skipIf(!ROOT)('the deny-list on canonical paths', () => {
  let bin: string;
  let blockNode: string;
  let shadowLink: string;
  beforeAll(async () => {
    // Stand-ins: on the old code these requests would run, and must harm nothing.
    for (const exe of ['cat', 'dd', 'chmod']) bin = fakeBin(dir, exe, 'echo RAN');
    blockNode = path.join(dir, 'not-a-disk');
    spawnSync('mknod', [blockNode, 'b', '7', '200']);
    shadowLink = path.join(dir, 'innocent.log');
    symlinkSync('/etc/shadow', shadowLink);
    const p = { type: 'string', pattern: '^[/a-zA-Z0-9._-]{1,200}$' };
    await h.agent(
      'iso-deny',
      {
        show: { argv: ['cat', '{f}'], params: { f: p } },
        wipe: { argv: ['dd', 'if=/dev/zero', 'of={dev}', 'count=0'], params: { dev: p } },
        open_up: { argv: ['chmod', '-R', '777', '{p}'], params: { p } },
      },
      { binDir: bin },
    );
  });

  it.each<[string, string, Record<string, string>, string]>([
    ['show', '/etc//shadow', { f: '/etc//shadow' }, 'reading the password hashes'],
    ['show', '/etc/./shadow', { f: '/etc/./shadow' }, 'reading the password hashes'],
    ['show', 'a symlink to /etc/shadow', { f: 'SHADOW_LINK' }, 'reading the password hashes'],
    ['wipe', '/dev//sda', { dev: '/dev//sda' }, 'writing to a block device'],
    ['wipe', '/dev/mapper/root', { dev: '/dev/mapper/root' }, 'writing to a block device'],
    ['wipe', 'a block device node outside /dev', { dev: 'BLOCK_NODE' }, 'writing to a block device'],
    ['open_up', '//', { p: '//' }, 'recursive chmod or chown of /'],
  ])('%s %s is denied', async (action, _what, given, rule) => {
    const params = Object.fromEntries(
      Object.entries(given).map(([k, v]) => [
        k,
        v === 'SHADOW_LINK' ? shadowLink : v === 'BLOCK_NODE' ? blockNode : v,
      ]),
    );
    const r = await h.request('iso-deny', { action, params });
    expect(r).toMatchObject({ status: 'rejected', error_code: 'denied' });
    expect(r.error).toContain(rule);
  });

  it('near misses still run', async () => {
    const file = path.join(dir, 'plain.txt');
    writeFileSync(file, 'x');
    expect((await h.request('iso-deny', { action: 'show', params: { f: file } })).status).toBe('succeeded');
    expect((await h.request('iso-deny', { action: 'wipe', params: { dev: file } })).status).toBe('succeeded');
    expect(
      calls(dir).filter((c) => c.includes('shadow') || c.includes('not-a-disk') || c.includes('chmod')),
    ).toEqual([]);
  });
});

describe.skipIf(!ROOT)('path params and hard links', () => {
  it('refuses a file with a second name outside its root, and takes a file with one name', async () => {
    const root = path.join(dir, 'logs');
    mkdirSync(root);
    const outside = path.join(dir, 'secret.txt');
    writeFileSync(outside, 'secret');
    linkSync(outside, path.join(root, 'app.log'));
    writeFileSync(path.join(root, 'own.log'), 'ok');
    await h.agent('iso-links', {
      tail: { argv: ['cat', '{file}'], params: { file: { type: 'path', roots: [root] } } },
    });
    const linked = await h.request('iso-links', {
      action: 'tail',
      params: { file: path.join(root, 'app.log') },
    });
    expect(linked).toMatchObject({ status: 'rejected', error_code: 'invalid_params' });
    expect(linked.error).toMatch(/2 hard links.*give the file a single name/);
    const own = await h.request('iso-links', {
      action: 'tail',
      params: { file: path.join(root, 'own.log') },
    });
    expect(own).toMatchObject({ status: 'succeeded', stdout: 'ok' });
  });
});
