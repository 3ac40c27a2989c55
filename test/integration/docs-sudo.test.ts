/**
 * docs/sudo.md and docs/configuration.md, run as written in a throwaway root
 * (test/helpers/doc-sandbox.ts), with configuration.md's complete example as
 * /etc/homelab-cmd/agent.yaml: check-config accepts it, `homelab-cmd sudoers`
 * prints what sudo.md shows, and visudo accepts the drop-in it installs.
 *
 * Substitutions: `homelab-cmd` on PATH is this checkout's bin (as `npm link` makes it),
 * and `npx` runs from the checkout; the files the example names (password, CA) exist
 * with made-up contents; where this machine lacks systemctl, journalctl or apt-get,
 * an empty stand-in sits in /usr/bin (sudoers only resolves their paths).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandsRunBy } from '../helpers/doc-coverage.js';
import { docBlocks, readDoc, shellCommands, yamlAfter } from '../helpers/doc-commands.js';
import { Sandbox, sandboxUnavailable } from '../helpers/doc-sandbox.js';
import { Walkthrough } from '../helpers/doc-walkthrough.js';
import { REPO } from '../helpers/fixtures.js';
import { findBinary, reportMissing } from '../helpers/mosquitto.js';

const ME = 'test/integration/docs-sudo.test.ts';
const missing =
  sandboxUnavailable ??
  (['sudo', 'visudo', 'openssl'].find((b) => !findBinary(b)) ? 'needs sudo, visudo and openssl' : undefined);
if (missing) reportMissing('sandbox', `docs/sudo.md and docs/configuration.md as written (${missing})`);

/** configuration.md's "A complete example". */
function completeExample(): string {
  const at = readDoc('docs/configuration.md')
    .split('\n')
    .findIndex((l) => /^## A complete example/.test(l));
  if (at === -1) throw new Error('docs/configuration.md has no "## A complete example" section');
  return yamlAfter('docs/configuration.md', at + 1);
}

describe.skipIf(missing !== undefined)(
  'docs/sudo.md and docs/configuration.md, run as written in a throwaway root',
  () => {
    let sandbox: Sandbox;
    let sudo: Walkthrough;
    let config: Walkthrough;

    beforeAll(async () => {
      // The pages run `npx homelab-cmd` in the repo, which npm 11 resolves through its npx cache in
      // ~/.npm/_npx (one entry per project path). Read-only inside the sandbox: filled here first, or the
      // first run on a fresh clone fails with EROFS.
      await promisify(execFile)('npx', ['--yes', 'homelab-cmd', '--version'], {
        cwd: REPO,
        timeout: 240_000,
      });
      sandbox = await Sandbox.create();
      await sandbox.must(
        [
          'install -d -m 0750 /etc/homelab-cmd',
          'cat > /etc/homelab-cmd/agent.yaml',
          "printf 'a-made-up-password\\n' > /etc/homelab-cmd/mqtt.pw",
          'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca -keyout /dev/null -out /etc/homelab-cmd/ca.pem 2>/dev/null',
          `ln -s ${path.join(REPO, 'bin/homelab-cmd.js')} /usr/local/bin/homelab-cmd`,
          ...['systemctl', 'journalctl', 'apt-get'].map(
            (b) => `command -v ${b} >/dev/null || install -m 0755 /dev/null /usr/bin/${b}`,
          ),
          `echo ${REPO} > /tmp/.cwd`,
        ].join('\n'),
        { stdin: completeExample() },
      );
      sudo = new Walkthrough('docs/sudo.md', ME, sandbox, []);
      config = new Walkthrough('docs/configuration.md', ME, sandbox, []);
    }, 420_000);

    afterAll(() => sandbox?.stop());

    it('takes its commands from the coverage rules', () => {
      expect(commandsRunBy(ME).length).toBeGreaterThanOrEqual(5);
    });

    it('configuration.md: check-config accepts the complete example', async () => {
      const r = await config.block('check-config');
      expect(r.stdout).toMatch(
        /^\/etc\/homelab-cmd\/agent\.yaml: OK — host pihole-1, \d+ action\(s\): restart_service, clear_logs, apply_updates, disk_usage, restart_dns/m,
      );
    });

    it("sudo.md: `homelab-cmd sudoers` prints the page's sample, line for line (and more for the example's other sudo actions)", async () => {
      const r = await sudo.block('--user homelab-cmd', {});
      const cmd = shellCommands('docs/sudo.md').find((c) => c.cmd.endsWith('--user homelab-cmd'))!;
      const sample = docBlocks('docs/sudo.md')
        .find((b) => b.lang === 'text' && b.line > cmd.line)!
        .lines.filter(Boolean);
      expect(sample.length).toBeGreaterThan(4);
      const out = r.stdout.split('\n');
      // Every sample line, in the sample's order.
      let at = -1;
      for (const l of sample) {
        const i = out.indexOf(l, at + 1);
        expect(
          i,
          `sudoers output lacks (in order) the sample line\n  ${l}\ngot:\n${r.stdout}`,
        ).toBeGreaterThan(at);
        at = i;
      }
    });

    it('sudo.md: installing the drop-in — visudo checks the file, then the whole configuration', async () => {
      const r = await sudo.block('visudo -cf');
      expect(r.stdout).toContain('/tmp/homelab-cmd.sudoers: parsed OK');
      expect(r.stdout).toContain('/etc/sudoers.d/homelab-cmd: parsed OK');
      expect((await sandbox.run('stat -c "%a %U:%G" /etc/sudoers.d/homelab-cmd')).stdout).toBe(
        '440 root:root\n',
      );
    });

    it('runs every command of both pages (or lists it as static in doc-coverage.ts)', () => {
      expect([...sudo.unrun(), ...config.unrun()]).toEqual([]);
    });
  },
);
