/**
 * sudo with the real binary (as root here, `sudo -n` succeeds), the
 * password-required path through a stand-in that fails the way sudo does,
 * and a timeout that must still end a command running as root.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeBin, isDead, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { findBinary, reportMissing } from '../helpers/mosquitto.js';
import { until } from '../helpers/wait.js';

const SUDO = findBinary('sudo');
const isRoot = process.getuid?.() === 0;
if (!SUDO) reportMissing('sudo', 'real-sudo tests');
else if (!isRoot)
  process.stderr.write(
    '\n*** SKIPPED: real-sudo tests need to run as root (where `sudo -n` needs no password) ***\n\n',
  );

const h = new Harness();
beforeAll(() => h.start());
afterAll(() => h.stop());

/** PIDs of live (non-zombie) processes whose argv is exactly `argv`. */
function processesWith(argv: string[]): number[] {
  const want = `${argv.join('\0')}\0`;
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === want && !isDead(Number(pid));
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe.skipIf(!SUDO || !isRoot)('with the real sudo', () => {
  beforeAll(async () => {
    await h.agent('sudo-real', {
      whoami: { argv: ['id', '-u'], sudo: true },
      stuck: { argv: ['sleep', '301.5'], sudo: true, timeout: '60s' },
    });
  });

  it('runs `sudo -n -- timeout … /abs/exe` and succeeds as root', async () => {
    const r = await h.request('sudo-real', { action: 'whoami' });
    expect(r).toMatchObject({ status: 'succeeded', exit_code: 0, stdout: '0\n' });
  });

  it('a timeout still ends a command running as root through sudo', async () => {
    const r = await h.request('sudo-real', { action: 'stuck', timeout: 1 }, { ms: 20_000 });
    expect(r).toMatchObject({ status: 'timed_out', error_code: 'timeout', exit_code: -1 });
    await until(
      () =>
        processesWith(['/usr/bin/sleep', '301.5']).length === 0 &&
        processesWith(['/bin/sleep', '301.5']).length === 0,
      10_000,
      'the root sleep to be gone',
    );
  });
});

describe('when sudo wants a password', () => {
  it('answers failed / sudo_failed, pointing at `homelab-cmd sudoers`', async () => {
    const dir = tempDir();
    // A stand-in that fails exactly the way `sudo -n` does without a NOPASSWD rule.
    const bin = fakeBin(dir, 'sudo', 'echo "sudo: a password is required" >&2; exit 1');
    fakeBin(dir, 'systemctl');
    await h.agent(
      'sudo-pw',
      { restart_service: { argv: ['systemctl', 'restart', 'nginx'], sudo: true } },
      { binDir: bin },
    );
    const r = await h.request('sudo-pw', { action: 'restart_service' });
    expect(r).toMatchObject({ status: 'failed', error_code: 'sudo_failed', exit_code: 1 });
    expect(r.error).toMatch(/homelab-cmd sudoers/);
    expect(r.error).toMatch(/a password is required/);
  });

  it('answers sudo_failed when sudo is not installed at all', async () => {
    const dir = tempDir();
    const bin = fakeBin(dir, 'systemctl');
    // A PATH with the fake systemctl and coreutils only: no sudo on it.
    await h.agent(
      'sudo-none',
      { restart_service: { argv: ['systemctl', 'restart', 'nginx'], sudo: true } },
      { execution: { path: `${bin}:${tempDir()}` } },
    );
    const r = await h.request('sudo-none', { action: 'restart_service' });
    expect(r).toMatchObject({ status: 'failed', error_code: 'sudo_failed', exit_code: -1 });
    expect(r.error).toMatch(/sudo is not installed/);
  });

  it('execution.sudo: true is the default for actions that do not say', async () => {
    const dir = tempDir();
    const bin = fakeBin(dir, 'sudo', 'echo "sudo: a password is required" >&2; exit 1');
    await h.agent(
      'sudo-default',
      { ok: { argv: ['true'] }, plain: { argv: ['true'], sudo: false } },
      { binDir: bin, execution: { sudo: true } },
    );
    expect((await h.request('sudo-default', { action: 'ok' })).error_code).toBe('sudo_failed');
    expect((await h.request('sudo-default', { action: 'plain' })).status).toBe('succeeded');
  });
});
