/**
 * docs/install.md, run as written, top to bottom, as root in a throwaway copy of
 * this machine (test/helpers/doc-sandbox.ts): clone, npm pack, npm install -g,
 * useradd, the config and password files, sudoers checked by visudo, the unit
 * installed and its ExecStart started as systemd would, a controller's status
 * and send (the action runs as root through the generated sudoers rule), the
 * hardening drop-in rated by systemd-analyze, removal, and the Docker setup.
 *
 * Substitutions (each stated below, nothing else changes): the repository to
 * clone is this checkout; the broker in the config is the test's; the editor
 * is a script that types the page's YAML; systemd-analyze runs offline.
 * Commands that need systemd, journald or Docker are static (doc-coverage.ts).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RunningBroker } from '../../src/broker/broker.js';
import { commandsRunBy } from '../helpers/doc-coverage.js';
import { readDoc, shellCommands, yamlAfter } from '../helpers/doc-commands.js';
import { Sandbox, sandboxUnavailable } from '../helpers/doc-sandbox.js';
import { AGENT_PW, CONTROLLER_PW, docsBroker, editorTyping, startService } from '../helpers/doc-service.js';
import { Walkthrough, type Substitution } from '../helpers/doc-walkthrough.js';
import { REPO } from '../helpers/fixtures.js';
import { findBinary, reportMissing } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort, waitForPort } from '../helpers/net.js';
import { slack, withDeadline } from '../helpers/wait.js';

const DOC = 'docs/install.md';
const ME = 'test/integration/docs-install.test.ts';
const missing =
  sandboxUnavailable ??
  (['sudo', 'visudo', 'git', 'setpriv', 'systemd-analyze'].find((b) => !findBinary(b))
    ? `needs sudo, visudo, git, setpriv and systemd-analyze`
    : undefined);
const isRepo = spawnSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).status === 0;
if (missing) reportMissing('sandbox', `docs/install.md as written (${missing})`);
if (!isRepo) reportMissing('git repository', 'docs/install.md as written (it clones this checkout)');

const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
const line = (needle: string) => shellCommands(DOC).find((c) => c.cmd.includes(needle))!.line;

describe.skipIf(missing !== undefined || !isRepo)(
  'docs/install.md, run as written in a throwaway root',
  () => {
    let sandbox: Sandbox;
    let broker: RunningBroker;
    let ctl: TestClient;
    let w: Walkthrough;
    let service: ReturnType<Sandbox['start']> | undefined;
    let url = '';

    beforeAll(async () => {
      broker = await docsBroker();
      url = `mqtt://127.0.0.1:${broker.port}`;
      ctl = await TestClient.connect(url, { username: 'homeassistant', password: CONTROLLER_PW });
      await ctl.sub('homelab/pihole-1/status', 'homeassistant/+/pihole-1/#');
      sandbox = await Sandbox.create();
      // This host has Pi-hole: a stand-in that records who ran it (uid 0 through sudo).
      await sandbox.must('cat > /usr/local/bin/pihole && chmod 0755 /usr/local/bin/pihole', {
        stdin:
          '#!/bin/sh\necho "$(id -u) pihole $*" >> /tmp/pihole.calls\necho "  [✓] DNS service is running"\n',
      });
      w = new Walkthrough(DOC, ME, sandbox, [
        {
          from: '<URL of the homelab-cmd repository you got it from>',
          to: REPO,
          why: 'the repository to clone is this checkout (its HEAD commit)',
        },
        {
          from: 'systemd-analyze security homelab-cmd',
          to: 'systemd-analyze security --offline=true homelab-cmd.service',
          why: 'no running systemd: rate the unit files on disk',
        },
        ...composeRunOnHost(),
      ]);
    }, 180_000);

    afterAll(async () => {
      service?.proc.kill('SIGKILL');
      sandbox?.stop();
      await ctl?.end();
      await broker?.close();
    });

    it('takes its commands from the coverage rules (the walkthrough knows every block)', () => {
      expect(commandsRunBy(ME).length).toBeGreaterThan(20);
    });

    it('What you need: Node.js 20 or later, system-wide', async () => {
      const r = await w.block('node --version');
      const [version = '', where = ''] = r.stdout.trim().split('\n');
      expect(Number(/^v(\d+)\./.exec(version)?.[1])).toBeGreaterThanOrEqual(20);
      expect(where).toMatch(/^\/usr(\/local)?\/bin\/node$/);
    });

    it('1. from a git checkout: npm ci, npm pack, npm install -g of the tarball; the command lands in /usr/bin or /usr/local/bin', async () => {
      await w.block('npm pack', { timeoutMs: slack(300_000) });
      const r = await w.block('command -v homelab-cmd');
      expect(r.stdout.trim().split('\n')).toEqual([
        expect.stringMatching(/^\/usr(\/local)?\/bin\/homelab-cmd$/),
        pkg.version,
      ]);
    }, 960_000);

    it('2. a system user with no login shell and no home directory yet', async () => {
      await w.block('useradd');
      const r = await sandbox.run(
        'getent passwd homelab-cmd; test ! -e /var/lib/homelab-cmd && echo no-home',
      );
      const [name, , uid, , , home, shell] = r.stdout.split('\n')[0]!.split(':');
      expect({ name, home, shell }).toEqual({
        name: 'homelab-cmd',
        home: '/var/lib/homelab-cmd',
        shell: '/usr/sbin/nologin',
      });
      expect(Number(uid)).toBeLessThan(1000); // --system
      expect(r.stdout).toContain('no-home');
      // The run user of the actions without sudo: its own group, no home, no login.
      await w.block('nologin homelab-cmd-run');
      const run = (await sandbox.run('getent passwd homelab-cmd-run; id -Gn homelab-cmd-run')).stdout.split(
        '\n',
      );
      const [runName, , runUid, , , , runShell] = run[0]!.split(':');
      expect({ runName, runShell, groups: run[1] }).toEqual({
        runName: 'homelab-cmd-run',
        runShell: '/usr/sbin/nologin',
        groups: 'homelab-cmd-run',
      });
      expect(Number(runUid)).toBeLessThan(1000);
    });

    it("3. the config (the page's YAML, typed into sudoedit) and the password: root-owned, readable by the group, checked as the service's user", async () => {
      const typed = yamlAfter(DOC, line('sudoedit')).replace('mqtt://broker.lan:1883', url);
      await w.block('sudoedit', { env: editorTyping(sandbox, typed) });
      await w.block('read -rs', { stdin: `${AGENT_PW}\n` });
      const r = await sandbox.run(
        'stat -c "%n %a %U:%G" /etc/homelab-cmd /etc/homelab-cmd/agent.yaml /etc/homelab-cmd/mqtt.pw; cat /etc/homelab-cmd/mqtt.pw',
      );
      expect(r.stdout, r.stderr).toBe(
        `/etc/homelab-cmd 750 root:homelab-cmd\n/etc/homelab-cmd/agent.yaml 640 root:homelab-cmd\n/etc/homelab-cmd/mqtt.pw 640 root:homelab-cmd\n${AGENT_PW}\n`,
      );
      expect(await sandbox.read('/etc/homelab-cmd/agent.yaml')).toBe(typed);
      const check = await w.block('check-config');
      // The page quotes what it prints.
      const promised = /It prints `… (.+?)`/s.exec(readDoc(DOC))![1]!.replace(/\s+/g, ' ');
      expect(check.stdout).toContain(`/etc/homelab-cmd/agent.yaml: ${promised}`);
    });

    it("4. sudoers: generated as the service's user, checked by visudo, installed 0440; sudo -l shows exactly the action", async () => {
      const r = await w.block('visudo -cf');
      expect(r.stdout).toContain('/tmp/homelab-cmd.sudoers: parsed OK');
      const rule = 'NOPASSWD: /usr/bin/timeout --kill-after\\=5s 30s /usr/local/bin/pihole restartdns';
      // sudo -l wraps long lines.
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(`(root) ${rule}`);
      expect((await sandbox.read('/etc/sudoers.d/homelab-cmd'))!.split('\n')).toContain(
        `homelab-cmd ALL=(root) ${rule}`,
      );
      expect((await sandbox.run('stat -c "%a %U:%G" /etc/sudoers.d/homelab-cmd')).stdout).toBe(
        '440 root:root\n',
      );
    });

    it('5. the unit: installed, verified, and its ExecStart (as systemd starts it) connects as agent-pihole-1', async () => {
      await w.block('packaging/homelab-cmd.service /etc/systemd/system/');
      const verify = await sandbox.run('systemd-analyze verify /etc/systemd/system/homelab-cmd.service');
      expect(verify.code, verify.stderr).toBe(0);
      // Stand-in for `systemctl enable --now homelab-cmd`.
      service = startService(sandbox, (await sandbox.read('/etc/systemd/system/homelab-cmd.service'))!);
      await ctl.wait(
        (m) => m.topic === 'homelab/pihole-1/status' && m.text === 'online',
        30_000,
        'pihole-1 online',
      );
    }, 180_000);

    it("6. check that it works: the log has the lines the page names; a controller's status and send; the action ran as root", async () => {
      // `journalctl -u homelab-cmd -f -o cat` is static: the journal would hold the unit's stderr, which is this.
      const journal = shellCommands(DOC).find((c) => c.cmd.startsWith('journalctl -u homelab-cmd -f'))!;
      const named = [...journal.comment.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
      const msgs = service!
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(named.length).toBeGreaterThan(0);
      for (const msg of named) expect(msgs).toContain(msg);

      const controller = yamlAfter(DOC, line('systemctl status homelab-cmd')).replace(
        'mqtt://broker.lan:1883',
        url,
      );
      await sandbox.run(
        `cat > ~/homelab-controller.yaml && printf '%s\\n' '${CONTROLLER_PW}' > ~/homelab-controller.pw`,
        { stdin: controller },
      );
      const r = await w.block('homelab-cmd status --config ~/homelab-controller.yaml');
      expect(r.stdout).toMatch(/^pihole-1\s+online/m);
      expect(r.stdout).toMatch(/"status": "succeeded"/);
      expect(readFileSync(path.join(sandbox.dir, 'tmp/pihole.calls'), 'utf8')).toBe('0 pihole restartdns\n');
    }, 180_000);

    it('Hardening: systemd-analyze rates the unit UNSAFE alone and OK with the drop-in, as the page says', async () => {
      const alone = await sandbox.run('systemd-analyze security --offline=true homelab-cmd.service');
      expect(alone.stdout).toMatch(/Overall exposure level for homelab-cmd\.service: \d+\.\d+ UNSAFE/);
      const r = await w.block('no-sudo-hardening.conf');
      expect(r.stdout).toMatch(/Overall exposure level for homelab-cmd\.service: \d+\.\d+ OK/);
    });

    it('Removing: stopped, discovery cleared from the broker, every file, the package and the user gone', async () => {
      // Stand-in for `systemctl disable --now`: SIGTERM to the main process (KillMode=mixed).
      const before = ctl.messages.filter((m) => m.topic.startsWith('homeassistant/') && m.text !== '').length;
      expect(before).toBeGreaterThan(0);
      service!.proc.kill('SIGTERM');
      expect(await withDeadline(service!.exited, 30_000, 'the agent to stop')).toBe(0);
      const r = await w.block('userdel');
      expect(r.stdout).toMatch(/^cleared \d+ discovery topic\(s\) of host pihole-1/m);
      // A fresh subscriber gets no retained discovery of pihole-1 any more.
      const fresh = await TestClient.connect(url, { username: 'homeassistant', password: CONTROLLER_PW });
      await fresh.sub('homeassistant/+/pihole-1/#', 'homelab/pihole-1/status');
      await fresh.wait(
        (m) => m.topic === 'homelab/pihole-1/status',
        10_000,
        'the retained status (sent after the subscriptions are served)',
      );
      expect(fresh.messages.filter((m) => m.topic.startsWith('homeassistant/'))).toEqual([]);
      await fresh.end();
      const gone = await sandbox.run(
        'getent passwd homelab-cmd homelab-cmd-run; command -v homelab-cmd; ls -d /etc/homelab-cmd /var/lib/homelab-cmd /etc/sudoers.d/homelab-cmd /etc/systemd/system/homelab-cmd.service* "$(npm root -g)/homelab-cmd" 2>&1 | grep -v "No such file" || true',
      );
      expect(gone.stdout).toBe('');
    }, 180_000);

    const PASSWD = findBinary('mosquitto_passwd');
    const MOSQ = findBinary('mosquitto');
    if (!PASSWD || !MOSQ)
      reportMissing('mosquitto / mosquitto_passwd', "the Docker section's password setup");
    it.skipIf(!PASSWD || !MOSQ)(
      'Docker: the passwords the page makes log in to a Mosquitto configured by docker/mosquitto/ (docker compose itself is static)',
      async () => {
        await w.block('docker compose run --rm mosquitto');
        // The clone is ~/homelab-cmd: section 1 cloned it from the home directory.
        const home = (await sandbox.run('echo ~')).stdout.trim();
        const file = (f: string) => `${home}/homelab-cmd/docker/${f}`;
        const agentPw = (await sandbox.read(file('agent.pw')))!.trim();
        const haPw = (await sandbox.read(file('homeassistant.pw')))!.trim();
        expect(agentPw).toMatch(/^[A-Za-z0-9+/]{32}$/);
        // Root's alone: the agent is root in its container, its actions run as uid 10002 (docs/security.md § In a container).
        expect(
          (await sandbox.run(`stat -c "%a %u:%g" ${file('agent.pw')} ${file('agent.yaml')}`)).stdout,
        ).toBe('400 0:0\n600 0:0\n');
        expect(
          (await sandbox.read(file('mosquitto/passwd')))!
            .split('\n')
            .filter(Boolean)
            .map((l) => l.split(':')[0]),
        ).toEqual(['agent-homelab-docker', 'homeassistant']);

        // Stand-in for `docker compose up mosquitto`: the same mosquitto.conf, paths mapped as compose mounts them.
        const port = await freePort();
        const conf = mosquittoConfForHost(
          readFileSync(path.join(REPO, 'docker/mosquitto/mosquitto.conf'), 'utf8'),
          `${home}/homelab-cmd/docker`,
          port,
        );
        const mosq = sandbox.start(`exec mosquitto -c ${sandbox.writeTmp('mosquitto.conf', conf)}`);
        await waitForPort(port, 10_000);
        const murl = `mqtt://127.0.0.1:${port}`;
        const agent = await TestClient.connect(murl, { username: 'agent-homelab-docker', password: agentPw });
        const ha = await TestClient.connect(murl, { username: 'homeassistant', password: haPw });
        await expect(
          TestClient.connect(murl, { username: 'homeassistant', password: 'wrong' }),
        ).rejects.toThrow(/Not authorized|Bad User Name or Password/i);
        await agent.end();
        await ha.end();
        mosq.proc.kill('SIGTERM');
        await mosq.exited;
      },
      180_000,
    );

    it('runs every command of the page (or lists it as static in doc-coverage.ts)', () => {
      // Without Mosquitto's tools the Docker block was skipped (loudly, above); everything else must have run.
      const docker = shellCommands(DOC).filter(
        (c) => c.block === shellCommands(DOC).find((x) => x.cmd.startsWith('docker compose run'))!.block,
      );
      const skipped = !PASSWD || !MOSQ ? docker.map((c) => `${DOC}:${c.line}: ${c.cmd}`) : [];
      expect(w.unrun().filter((u) => !skipped.includes(u))).toEqual([]);
    });
  },
);

/** `docker compose run --rm SERVICE cmd /container/path` → `cmd host/path`, the paths mapped by SERVICE's bind mounts. */
function composeRunOnHost(): Substitution[] {
  const compose = parse(readFileSync(path.join(REPO, 'docker/compose.yaml'), 'utf8')) as {
    services: Record<string, { volumes?: string[] }>;
  };
  return Object.entries(compose.services).map(([name, s]) => ({
    from: new RegExp(`^docker compose run --rm ${name} (.*)$`),
    to: (_all: string, cmd: string) =>
      (s.volumes ?? [])
        .filter((v) => v.startsWith('./'))
        .map((v) => v.split(':'))
        .reduce((c, [host = '', target = '']) => c.split(` ${target} `).join(` ${host.slice(2)} `), cmd),
    why: `no Docker engine: the same program on the host, on the files the ${name} service mounts`,
  }));
}

/** docker/mosquitto/mosquitto.conf for a Mosquitto on this host: a loopback port, the mounted files' host paths, no persistence. */
function mosquittoConfForHost(conf: string, dockerDir: string, port: number): string {
  return `${conf
    .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
    .replace(/\/mosquitto\/config\//g, `${dockerDir}/mosquitto/`)
    .replace(/^persistence true$/m, 'persistence false')
    .replace(/^persistence_location .*$/m, '')
    .replace(
      /^log_dest stdout$/m,
      'log_dest stderr',
    )}\n# The image runs Mosquitto as the owner of the password file; here that is root.\nuser root\n`;
}
