/**
 * The MQTT and CLI examples of the docs (README, mqtt-api, security, operations,
 * performance, home-assistant), run as written against a real Mosquitto and an
 * agent for host pihole-1 (its pihole, systemctl and apt-get are stand-ins on a
 * test PATH). Which commands: commandsRunBy() of this file (test/helpers/doc-coverage.ts);
 * each must find a handler below, which runs it and checks its effect.
 *
 * Substitutions, and nothing else: the broker address and credentials become this
 * test's private Mosquitto; `<host>` is pihole-1; `npx homelab-cmd` / `homelab-cmd`
 * run this checkout's bin; `my-agent.yaml` is "your own config" (below); `fleet.key`
 * is a key file of the test; journalctl's output is the agent's log (no journald).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { commandsRunBy } from '../helpers/doc-coverage.js';
import { where, type DocCommand } from '../helpers/doc-commands.js';
import { BIN, REPO, calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import {
  MOSQUITTO,
  findBinary,
  reportMissing,
  startMosquitto,
  type MosquittoProcess,
} from '../helpers/mosquitto.js';
import { freePort, waitForPort } from '../helpers/net.js';
import { slack, until, withDeadline } from '../helpers/wait.js';

const ME = 'test/integration/docs-examples.test.ts';
const available =
  MOSQUITTO !== undefined &&
  findBinary('mosquitto_pub') !== undefined &&
  findBinary('mosquitto_rr') !== undefined &&
  findBinary('mosquitto_sub') !== undefined;
if (!available) reportMissing('mosquitto / mosquitto-clients', "running the docs' MQTT and CLI examples");

const FINAL = /"status":"(succeeded|failed|timed_out|rejected|interrupted)"/;
const commands = commandsRunBy(ME);
let m: MosquittoProcess;
let dir: string;
let agentFile: string;
let agent: AgentProcess;
let agentLog = '';
let ctl: TestClient;
const watchers = new Map<string, { proc: ChildProcess; out: () => string }>();

/** Points an example at the test broker; everything else stays as documented. */
function localize(cmd: string): string {
  // The README's tour relies on `up` on the default port; here the broker is private, so say where it is.
  if (/^(npx )?homelab-cmd (send|status)\b/.test(cmd) && !cmd.includes('--url'))
    cmd = `${cmd} --url ${m.url}`;
  return cmd
    .replace(/ -h \S+/, '')
    .replace(/ -u \S+ -P \S+/, '')
    .replace(/--url mqtt:\/\/\S+/, `--url ${m.url}`)
    .replace(/^(npx )?homelab-cmd /, `${process.execPath} ${BIN} `)
    .replace(/<host>/g, 'pihole-1')
    .replace(/^(mosquitto_pub|mosquitto_rr|mosquitto_sub)/, `$1 -h 127.0.0.1 -p ${m.port}`);
}

function sh(
  cmd: string,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('sh', ['-c', cmd], {
    encoding: 'utf8',
    timeout: slack(30_000),
    cwd: opts.cwd ?? dir,
    env: { ...process.env, ...opts.env },
  });
}

function startAgent(): Promise<void> {
  agent = spawnCli(['agent', '--config', agentFile]);
  agent.proc.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  const before = ctl.messages.length;
  return ctl
    .wait(
      (x) =>
        ctl.messages.indexOf(x) >= before && x.topic === 'homelab/pihole-1/status' && x.text === 'online',
      15_000,
      'pihole-1 online',
    )
    .then(() => undefined);
}

async function stopAgent(): Promise<void> {
  agent.proc.kill('SIGTERM');
  await withDeadline(agent.exited, 15_000, 'the agent to stop');
}

/** A final result on homelab/pihole-1/result published after message index `before`. */
async function resultAfter(before: number, what: string): Promise<Record<string, unknown>> {
  const res = await ctl.wait(
    (x) => ctl.messages.indexOf(x) >= before && x.topic === 'homelab/pihole-1/result' && FINAL.test(x.text),
    15_000,
    `a result for: ${what}`,
  );
  return JSON.parse(res.text) as Record<string, unknown>;
}

/**
 * "Your own config" of the README's tour: config/agent.example.yaml with its real maintenance
 * actions uncommented (as the README says to start), pointed at this test's broker, with the
 * broker users that `acl` and `broker` need, and the embedded broker on a free port.
 */
async function myAgentYaml(): Promise<string> {
  const example = readFileSync(path.join(REPO, 'config/agent.example.yaml'), 'utf8');
  const marker = example.indexOf('# --- Real maintenance actions');
  const after = example.indexOf('\n', marker) + 1;
  const uncommented = example.slice(0, after) + example.slice(after).replace(/^ {2}# ?/gm, '  ');
  const cfg = parse(uncommented) as Record<string, Record<string, unknown>>;
  cfg.mqtt!.url = m.url;
  cfg.state_dir = `${tempDir()}/state` as never;
  cfg.broker = {
    host: '127.0.0.1',
    port: await freePort(),
    users: [
      {
        username: 'agent-me',
        password: 'agent-me-password',
        role: 'agent',
        host: os.hostname().toLowerCase(),
      },
      { username: 'homeassistant', password: 'ha-password', role: 'controller' },
    ],
  };
  return writeConfig(tempDir(), cfg, 'my-agent.yaml');
}

type Handler = { match: RegExp; run: (c: DocCommand) => Promise<void> };

const handlers: Handler[] = [
  {
    // README quick start, as written: `npm ci` is .ci/run's. Whether or not 1883 is taken here, `up` runs its own
    // broker (a free port when it is), and the tour's `send` finds it with no --url (a private runtime dir).
    match: /^npm ci && npm start$/,
    async run() {
      const runtime = tempDir('hc-run-');
      const env = { ...process.env, XDG_STATE_HOME: tempDir(), XDG_RUNTIME_DIR: runtime };
      const p = spawn('npm', ['start'], {
        cwd: REPO,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.stderr.on('data', (c: Buffer) => (out += c.toString()));
      try {
        await until(() => out.includes('is online'), 30_000, '`npm start` to say the host is online');
        const host = os.hostname().toLowerCase();
        expect(out).toMatch(
          new RegExp(
            `host "${host}" is online at mqtt://127\\.0\\.0\\.1:\\d+ \\(embedded broker, MQTT 5 and 3\\.1\\.1\\)`,
          ),
        );
        expect(out).toContain(`npx homelab-cmd send ${host} uptime\n`);
        const r = spawnSync(process.execPath, [BIN, 'send', host, 'uptime'], {
          encoding: 'utf8',
          env,
          timeout: slack(30_000),
        });
        expect(r.status, r.stderr).toBe(0);
      } finally {
        process.kill(-p.pid!, 'SIGINT'); // Ctrl-C: npm and the node it started, the group we made
        await new Promise((r) => p.once('exit', r));
      }
      expect(out).not.toMatch(/write after end|"level":(40|50)/);
    },
  },
  {
    // Watchers run from the start to the end of this file; what they printed is checked last.
    match: /^mosquitto_sub /,
    async run(c) {
      const w = watchers.get(where(c));
      expect(w?.proc.exitCode, `${c.cmd} should still be watching`).toBe(null);
    },
  },
  {
    // The recipes for clearing a retained command: the docs say to stop the agent first.
    match: /^mosquitto_pub .* -r\b/,
    async run(c) {
      const topic = / -t (\S+)/.exec(c.cmd)![1]!;
      await stopAgent();
      try {
        const stuck = await TestClient.connect(m.url);
        await stuck.pub(topic, '{"id":"stuck-1"}', { retain: true }); // the mistake the recipe fixes
        await stuck.end();
        const r = sh(localize(c.cmd));
        expect(r.status, r.stderr).toBe(0);
        // Anything retained arrives right after SUBACK; the status is retained too, so once it is here the cmd would be.
        const fresh = await TestClient.connect(m.url);
        await fresh.sub(topic, 'homelab/pihole-1/status');
        await fresh.wait((x) => x.topic === 'homelab/pihole-1/status', 10_000, 'the retained status');
        expect(fresh.on(topic)).toEqual([]);
        await fresh.end();
      } finally {
        await startAgent();
      }
    },
  },
  {
    // Home Assistant's birth message: every agent publishes its discovery again.
    match: /^mosquitto_pub -t homeassistant\/status -m online$/,
    async run(c) {
      const before = ctl.messages.length;
      expect(sh(localize(c.cmd)).status).toBe(0);
      await ctl.wait(
        (x) =>
          ctl.messages.indexOf(x) >= before &&
          x.topic === 'homeassistant/button/pihole-1/run_restart_dns/config',
        10_000,
        'discovery published again',
      );
    },
  },
  {
    match: /^mosquitto_pub /,
    async run(c) {
      const before = ctl.messages.length;
      const r = sh(localize(c.cmd));
      expect(r.status, r.stderr).toBe(0);
      expect(await resultAfter(before, c.cmd)).toMatchObject({ host: 'pihole-1', status: 'succeeded' });
    },
  },
  {
    match: /^mosquitto_rr /,
    async run(c) {
      const r = sh(localize(c.cmd));
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ host: 'pihole-1', status: 'succeeded' });
    },
  },
  {
    match: /^(npx )?homelab-cmd (send|status)\b/,
    async run(c) {
      const r = sh(localize(c.cmd));
      // The docs say which examples are refused on purpose (a comment "rejected": exit 1).
      const refused = /rejected/.test(c.comment);
      expect(r.status, r.stderr).toBe(refused ? 1 : 0);
      expect(r.stdout).toMatch(refused ? /"status": "rejected"/ : /pihole-1/);
      if (c.cmd.includes('--follow')) {
        // The output lines come first, live, then the result.
        const json = r.stdout.indexOf('{');
        expect(r.stdout.slice(0, json)).toContain('0 upgraded');
        expect(JSON.parse(r.stdout.slice(json))).toMatchObject({
          status: 'succeeded',
          action: 'apply_updates',
        });
      }
    },
  },
  {
    match: /^npx homelab-cmd \S+ --config my-agent\.yaml\b/,
    async run(c) {
      const file = await myAgentYaml();
      const cmd = localize(c.cmd.replace('my-agent.yaml', file));
      const verb = /^npx homelab-cmd (\S+)/.exec(c.cmd)![1];
      if (verb === 'agent' || verb === 'broker') {
        const p = spawn('sh', ['-c', `exec ${cmd}`], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stderr.on('data', (b: Buffer) => (out += b.toString()));
        const exited = new Promise((r) => p.once('exit', r));
        try {
          if (verb === 'agent')
            await ctl.wait(
              (x) => x.topic === `homelab/${os.hostname().toLowerCase()}/status` && x.text === 'online',
              15_000,
              'my-agent online',
            );
          else
            await waitForPort(
              (parse(readFileSync(file, 'utf8')) as { broker: { port: number } }).broker.port,
              45_000,
            );
        } catch (err) {
          throw new Error(`${String(err)}\n${out}`);
        } finally {
          p.kill('SIGTERM');
          await exited;
        }
        return;
      }
      const r = sh(cmd);
      expect(r.status, r.stderr).toBe(0);
      const actions = Object.keys(
        (parse(readFileSync(file, 'utf8')) as { actions: Record<string, unknown> }).actions,
      );
      expect(actions).toEqual(
        expect.arrayContaining(['uptime', 'restart_service', 'clear_logs', 'apply_updates', 'restart_dns']),
      ); // uncommented
      const expected: Record<string, RegExp> = {
        'check-config': new RegExp(
          `OK — host ${os.hostname().toLowerCase()}, ${actions.length} action\\(s\\): ${actions.join(', ')}[,;].*execution enabled`,
        ),
        explain: /^action:\s+restart_service$[\s\S]*would run: yes/m,
        sudoers: /^\S+ ALL=\(root\) NOPASSWD: \S*timeout --kill-after\\=5s 60s \S*systemctl restart \*$/m,
        acl: /^user agent-me$/m,
      };
      expect(r.stdout).toMatch(expected[verb!] ?? /(?!)/);
    },
  },
  {
    // security.md: the shell recipe publishes a signed request; the agent (with the key) checks it.
    match: /^examples\/sign-request\.sh /,
    async run(c) {
      const id = /restart_service (\S+) /.exec(c.cmd)![1]!;
      const cmd = c.cmd
        .replace(/ fleet\.key /, ` ${dir}/fleet.key `)
        .replace(/ -h \S+$/, ` -h 127.0.0.1 -p ${m.port}`);
      const done = ctl.wait(
        (x) => x.topic === `homelab/pihole-1/result/${id}` && FINAL.test(x.text),
        15_000,
        `the result of ${id}`,
      );
      const r = sh(cmd, { cwd: REPO });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse((await done).text)).toMatchObject({
        status: 'succeeded',
        stdout: 'restarted nginx\n',
      });
    },
  },
  {
    // operations.md: no journald here; the journal would hold the agent's stderr, so that is the input.
    match: /^journalctl -u homelab-cmd -o cat \| jq /,
    async run(c) {
      if (!findBinary('jq')) {
        reportMissing('jq', `${c.cmd} (operations.md)`);
        return;
      }
      // An agent that cannot reach its broker warns: a log with warnings and info lines both.
      const d = tempDir();
      const cfg = writeConfig(d, {
        host: 'jq-host',
        state_dir: `${d}/state`,
        mqtt: { url: `mqtt://127.0.0.1:${await freePort()}` },
      });
      const p = spawnCli(['agent', '--config', cfg]);
      await until(() => p.output().includes('broker not reachable'), 15_000, 'a warning in the log');
      p.proc.kill('SIGTERM');
      await p.exited;
      writeFileSync(`${d}/journal`, p.output());
      const r = sh(c.cmd.replace('journalctl -u homelab-cmd -o cat', `cat ${d}/journal`));
      expect(r.status, r.stderr).toBe(0);
      const kept = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(kept.length).toBeGreaterThan(0);
      expect(kept.every((l) => l.level >= 40)).toBe(true);
      expect(kept.map((l) => l.msg)).toContain('broker not reachable; retrying');
      expect(p.output()).toMatch(/"level":30,.*"msg":"agent started"/); // and info lines were there to filter out
    },
  },
  {
    match: /^node bench\/bench\.mjs --help$/,
    async run(c) {
      const r = sh(c.cmd, { cwd: REPO });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/npm run bench/);
    },
  },
];

describe.skipIf(!available)("the docs' MQTT and CLI examples, run as written", () => {
  beforeAll(async () => {
    m = await startMosquitto();
    dir = tempDir();
    fakeBin(dir, 'pihole', 'echo "  [✓] DNS service is running"');
    // Restarting pihole-FTL takes a moment: over the second after which a `running` result is published.
    fakeBin(dir, 'systemctl', 'if [ "$2" = pihole-FTL ]; then sleep 1.3; fi; echo "restarted $2"');
    fakeBin(dir, 'apt-get', 'echo "0 upgraded"');
    fakeBin(dir, 'sudo', 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
    writeFileSync(`${dir}/fleet.key`, 'a-fleet-key-of-at-least-16-characters\n');
    agentFile = writeConfig(dir, {
      host: 'pihole-1',
      state_dir: `${dir}/state`,
      mqtt: { url: m.url },
      execution: { enabled: true, path: testPath(`${dir}/bin`) },
      // Signed requests are checked whenever they come (security.md's shell recipe); unsigned ones still run.
      security: { key_file: `${dir}/fleet.key` },
      actions: {
        restart_dns: { argv: ['pihole', 'restartdns'], button: true },
        restart_service: {
          argv: ['systemctl', 'restart', '{unit}'],
          params: { unit: { type: 'string', pattern: '^[a-zA-Z0-9_.@-]{1,64}$' } },
          pattern: '^systemctl restart (?<unit>[a-zA-Z0-9_.@-]{1,64})$',
          sudo: true,
        },
        apply_updates: {
          steps: [
            ['apt-get', 'update'],
            ['apt-get', '-y', 'upgrade'],
          ],
          sudo: true,
        },
        // The example config's demo actions, which the README's tour uses.
        uptime: { argv: ['uptime'], pattern: '^uptime$' },
        disk_usage: { argv: ['df', '-h', '/'], pattern: '^df -h /$' },
        echo: {
          argv: ['echo', '{message}'],
          params: { message: { type: 'string', pattern: '^[A-Za-z0-9 _.,:!?-]{1,100}$', default: 'hello' } },
          pattern: '^echo (?<message>.{1,100})$',
        },
      },
    });
    ctl = await TestClient.connect(m.url);
    await ctl.sub('homelab/#', 'homeassistant/#');
    await startAgent();
    for (const c of commands.filter((x) => x.cmd.startsWith('mosquitto_sub '))) {
      const proc = spawn('sh', ['-c', `exec ${localize(c.cmd.replace(/\s*&$/, ''))}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
      watchers.set(where(c), { proc, out: () => out });
    }
  }, 180_000);

  afterAll(async () => {
    for (const w of watchers.values()) w.proc.kill('SIGTERM');
    agent?.proc.kill('SIGTERM');
    await agent?.exited;
    await ctl?.end();
    await m?.stop();
  });

  it('finds the examples (the extraction itself works)', () => {
    expect(commands.length).toBeGreaterThanOrEqual(30);
    expect(commands.filter((c) => c.cmd.startsWith('mosquitto_pub')).length).toBeGreaterThanOrEqual(6);
  });

  it.each(commands.map((c) => [where(c), c.cmd, c] as const))(
    '%s: %s',
    async (_w, _cmd, c) => {
      const h = handlers.find((x) => x.match.test(c.cmd));
      if (!h)
        throw new Error(
          `${where(c)}: no handler in ${ME} runs \`${c.cmd}\` — add one that runs it as written and checks its effect`,
        );
      await h.run(c);
    },
    180_000,
  );

  it('the watchers (mosquitto_sub) printed what their examples promise', () => {
    for (const [at, w] of watchers) expect(w.out(), `${at} printed nothing`).toMatch(/^\S+ /m);
    const out = (filter: string) =>
      [...watchers.entries()]
        .find(([, w]) => w.proc.spawnargs.join(' ').includes(`'${filter}'`))?.[1]
        .out() ?? '';
    // mqtt-api.md's "following one request": running, then the final result, both with the transaction.
    const ftl = out('homelab/pihole-1/result/ftl-1').split('\n').filter(Boolean);
    expect(
      ftl.map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as { status: string; transaction: string }),
    ).toEqual([
      expect.objectContaining({ status: 'running', transaction: 'from-cli' }),
      expect.objectContaining({ status: 'succeeded', transaction: 'from-cli' }),
    ]);
    expect(out('homelab/pihole-1/output/+')).toMatch(
      /^homelab\/pihole-1\/output\/\S+ \{.*"lines":\["0 upgraded"/m,
    );
    expect(out('homeassistant/+/pihole-1/+/config')).toMatch(
      /^homeassistant\/button\/pihole-1\/run_restart_dns\/config \{/m,
    );
    expect(calls(dir)).toContain('systemctl restart nginx'); // the signed request ran
  });
});
