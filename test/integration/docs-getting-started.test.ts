/**
 * docs/getting-started.md, run as written in a throwaway root (test/helpers/doc-sandbox.ts),
 * from the clone to the "Show uptime" button pressed the way Home Assistant presses it.
 *
 * Substitutions: the repository to clone is this checkout; `npm ci` and `npm pack` are the same
 * commands as docs/install.md's, which docs-install.test.ts runs in a clone: here the tarball of this
 * checkout is copied in instead (test/helpers/pack.ts), and a test checks the commands are the same;
 * the broker in the config is the test's; the editor is a script that types the page's YAML; `<user>` is `pi` for `ssh -G`.
 * The Pi's OS setup (ssh, apt-get, NodeSource) and systemctl/journalctl are static
 * (doc-coverage.ts); what replaces running them is checked here.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBroker } from '../../src/broker/broker.js';
import { commandsRunBy } from '../helpers/doc-coverage.js';
import { readDoc, shellCommands, yamlAfter } from '../helpers/doc-commands.js';
import { Sandbox, sandboxUnavailable } from '../helpers/doc-sandbox.js';
import { AGENT_PW, CONTROLLER_PW, docsBroker, editorTyping, startService } from '../helpers/doc-service.js';
import { Walkthrough } from '../helpers/doc-walkthrough.js';
import { REPO } from '../helpers/fixtures.js';
import { packedTarball } from '../helpers/pack.js';
import { findBinary, reportMissing } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { slack, until, withDeadline } from '../helpers/wait.js';

const DOC = 'docs/getting-started.md';
const ME = 'test/integration/docs-getting-started.test.ts';
const missing =
  sandboxUnavailable ??
  (['sudo', 'visudo', 'git', 'setpriv'].find((b) => !findBinary(b))
    ? 'needs sudo, visudo, git and setpriv'
    : undefined);
const isRepo = spawnSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).status === 0;
if (missing) reportMissing('sandbox', `docs/getting-started.md as written (${missing})`);
if (!isRepo) reportMissing('git repository', 'docs/getting-started.md as written (it clones this checkout)');

const doc = readDoc(DOC);
const line = (needle: string) => shellCommands(DOC).find((c) => c.cmd.includes(needle))!.line;

describe.skipIf(missing !== undefined || !isRepo)(
  'docs/getting-started.md, run as written in a throwaway root',
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
      await ctl.sub('homelab/pihole-1/status', 'homelab/pihole-1/result', 'homeassistant/button/pihole-1/#');
      sandbox = await Sandbox.create();
      w = new Walkthrough(DOC, ME, sandbox, [
        {
          from: '<URL of the homelab-cmd repository you got it from>',
          to: REPO,
          why: 'the repository to clone is this checkout (its HEAD commit)',
        },
        {
          from: /^npm ci$/,
          to: ': npm ci — run in a clone by docs-install.test.ts',
          why: "the same command in docs/install.md's block, which docs-install.test.ts runs (a minute of CPU)",
        },
        {
          from: /^npm pack$/,
          to: `cp ${await packedTarball()} .`,
          why: "docs/install.md's npm pack, run by docs-install.test.ts; this checkout's tarball (test/helpers/pack.ts)",
        },
      ]);
    }, 180_000);

    afterAll(async () => {
      service?.proc.kill('SIGKILL');
      sandbox?.stop();
      await ctl?.end();
      await broker?.close();
    });

    it('takes its commands from the coverage rules', () => {
      expect(commandsRunBy(ME).length).toBeGreaterThan(10);
    });

    it('1. prepare the Pi (static: a login and OS packages) — ssh parses the destination, apt-get accepts the arguments', async () => {
      const ssh = findBinary('ssh');
      if (!ssh) reportMissing('ssh', 'checking the ssh line of getting-started.md with ssh -G');
      else {
        const cmd = shellCommands(DOC)
          .find((c) => c.cmd.startsWith('ssh '))!
          .cmd.replace('<user>', 'pi');
        // -G prints the resolved configuration and exits: it never connects.
        const r = spawnSync('sh', ['-c', cmd.replace(/^ssh /, 'ssh -G ')], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^user pi$/m);
        expect(r.stdout).toMatch(/^hostname pihole-1\.local$/m);
      }
      for (const c of shellCommands(DOC).filter((x) => /^sudo apt-get/.test(x.cmd))) {
        for (const part of c.cmd.split(' && ')) {
          const args = part.replace(/^sudo apt-get /, '');
          if (args === 'update') continue; // nothing to simulate: it only downloads the package lists
          // This image turns apt's package cache off (docker-clean): each apt-get would rebuild it from the
          // lists (seconds of CPU). One cache file in the sandbox's /tmp serves the simulations after the first.
          const r = await sandbox.run(
            `apt-get -s -o Dir::Cache::pkgcache=/tmp/apt.pkgcache -o Dir::Cache::srcpkgcache=/tmp/apt.srcpkgcache ${args}`,
          );
          if (/Unable to locate package/.test(r.stderr))
            reportMissing('apt package lists', `simulating "${part}" (run apt-get update first)`);
          else expect(r.code, `${part}: ${r.stderr}`).toBe(0);
        }
      }
      // apt-get reads every package list it has: seconds on a quiet machine, a minute on a busy one.
    }, 720_000);

    it("3. install: the page's npm commands are docs/install.md's, which docs-install.test.ts runs in a clone", () => {
      const npm = (page: string) =>
        shellCommands(page)
          .filter((c) => /^(sudo )?npm /.test(c.cmd) && !c.cmd.includes('uninstall'))
          .map((c) => c.cmd.replace(/\s+#.*$/, ''));
      expect(npm(DOC)).toEqual(['npm ci', 'npm pack', 'sudo npm install -g ./homelab-cmd-*.tgz']);
      expect(npm('docs/install.md')).toEqual(expect.arrayContaining(npm(DOC)));
    });

    it('1.3 Node.js: the version it checks for satisfies engines.node', async () => {
      const r = await w.block('node --version');
      expect(Number(/^v(\d+)\./.exec(r.stdout)?.[1])).toBeGreaterThanOrEqual(20);
    });

    it('3. install: clone, npm ci, npm pack, npm install -g, --version, the system user', async () => {
      const r = await w.block('npm pack', { timeoutMs: slack(300_000) });
      expect(r.stdout).toMatch(/^\d+\.\d+\.\d+$/m);
      expect((await sandbox.run('getent passwd homelab-cmd')).stdout).toMatch(
        /^homelab-cmd:x:\d+:\d+::\/var\/lib\/homelab-cmd:\/usr\/sbin\/nologin$/m,
      );
    }, 960_000);

    it("4. the config: the page's YAML typed into sudoedit, the password, check-config as the agent's user", async () => {
      const typed = yamlAfter(DOC, line('sudoedit')).replace('mqtt://homeassistant.local:1883', url);
      await w.block('sudoedit', { env: editorTyping(sandbox, typed) });
      expect(await sandbox.read('/etc/homelab-cmd/agent.yaml')).toBe(typed);
      const r = await w.block('read -rs', { stdin: `${AGENT_PW}\n` });
      const promised = /It answers `… (.+?)`/s.exec(doc)![1]!.replace(/\s+/g, ' ');
      expect(r.stdout).toContain(`/etc/homelab-cmd/agent.yaml: ${promised}`);
      expect(
        (await sandbox.run('stat -c "%a %U:%G" /etc/homelab-cmd/agent.yaml /etc/homelab-cmd/mqtt.pw')).stdout,
      ).toBe('640 root:homelab-cmd\n640 root:homelab-cmd\n');
    });

    it('5. sudoers: exactly apt-get update and apt-get -y upgrade, wrapped in timeout', async () => {
      await w.block('visudo -cf');
      const rules = (await sandbox.read('/etc/sudoers.d/homelab-cmd'))!
        .split('\n')
        .filter((l) => l && !l.startsWith('#'));
      expect(rules).toEqual([
        expect.stringMatching(
          /^homelab-cmd ALL=\(root\) NOPASSWD: \/usr\/bin\/timeout --kill-after\\=5s 1800s \/(usr\/)?bin\/apt-get update$/,
        ),
        expect.stringMatching(
          /^homelab-cmd ALL=\(root\) NOPASSWD: \/usr\/bin\/timeout --kill-after\\=5s 1800s \/(usr\/)?bin\/apt-get -y upgrade$/,
        ),
      ]);
    });

    it('6. the service: the unit installed, its ExecStart started as systemd would; the log shows what the page says', async () => {
      await w.block('packaging/homelab-cmd.service /etc/systemd/system/');
      service = startService(sandbox, (await sandbox.read('/etc/systemd/system/homelab-cmd.service'))!);
      await ctl.wait(
        (m) => m.topic === 'homelab/pihole-1/status' && m.text === 'online',
        30_000,
        'pihole-1 online',
      );
      // `journalctl -u homelab-cmd -o cat -n 5` is static: the journal would hold this output.
      const promised = [
        .../The log shows (.+?) If it cannot log in/s.exec(doc)![1]!.matchAll(/`([^`]+)`/g),
      ].map((m) => m[1]!.replace(/\s+/g, ' '));
      expect(promised.length).toBe(3);
      const logged = () =>
        service!
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => (JSON.parse(l) as { msg: string }).msg);
      await until(
        () => promised.every((p) => logged().includes(p!)),
        10_000,
        `the log lines ${promised.join(', ')}`,
      );
    }, 180_000);

    it('7. Home Assistant: buttons "Show uptime" and "Apply updates"; pressing Show uptime makes Last result succeeded', async () => {
      const discovered = () =>
        ctl.messages
          .filter((m) => m.topic.startsWith('homeassistant/button/pihole-1/') && m.text)
          .map(
            (m) =>
              JSON.parse(m.text) as {
                name: string;
                command_topic: string;
                command_template: string;
                payload_press: string;
              },
          );
      await until(() => discovered().length >= 3, 10_000, 'the discovery of three buttons');
      const buttons = discovered();
      // The page's two, and the Cancel button it names (available only while something runs).
      expect(buttons.map((b) => b.name).sort()).toEqual(['Apply updates', 'Cancel', 'Show uptime']);
      // What HA does when the button is pressed: command_template rendered with value = payload_press, on command_topic.
      const uptime = buttons.find((b) => b.name === 'Show uptime')!;
      const before = ctl.messages.length;
      await ctl.pub(
        uptime.command_topic,
        renderCommandTemplate(uptime.command_template, { value: uptime.payload_press, nowMs: Date.now() }),
      );
      const res = await ctl.wait(
        (m) =>
          ctl.messages.indexOf(m) >= before &&
          m.topic === 'homelab/pihole-1/result' &&
          /"succeeded"|"failed"/.test(m.text),
        20_000,
        'the Uptime result',
      );
      expect(JSON.parse(res.text)).toMatchObject({
        action: 'uptime',
        status: 'succeeded',
        stdout: expect.stringContaining('load average'),
      });
      service!.proc.kill('SIGTERM');
      expect(await withDeadline(service!.exited, 30_000, 'the agent to stop')).toBe(0);
    }, 180_000);

    it('runs every command of the page (or lists it as static in doc-coverage.ts)', () => {
      expect(w.unrun()).toEqual([]);
    });
  },
);
