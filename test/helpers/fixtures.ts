import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
// Configs refuse YAML anchors and aliases, which stringify writes for an object used twice.
const stringify = (value: unknown): string => toYaml(value, { aliasDuplicateObjects: false });

export const REPO = path.resolve(import.meta.dirname, '../..');
export const BIN = path.join(REPO, 'bin', 'homelab-cmd.js');
/**
 * The CLI as the published package runs it: the tests' bundle of src/ (test/global-build.ts builds it
 * before any test, from the same sources as dist/). test/helpers/agent.ts starts it; the few tests
 * that are about the bin itself, or the command lines the docs print, run BIN (dist/).
 */
export const CLI_ENTRY = path.join(REPO, 'node_modules', '.cache', 'homelab-cmd-build', 'bundle', 'run.js');

export function tempDir(prefix = 'hc-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a YAML config built from an object; returns its path. */
export function writeConfig(dir: string, config: Record<string, unknown>, name = 'agent.yaml'): string {
  const file = path.join(dir, name);
  writeFileSync(file, stringify(config));
  return file;
}

/**
 * Fake executables (systemctl, pihole, …) on a test PATH: each appends its argv
 * to `<dir>/calls.log`, then runs the given shell body. They stand in for what
 * cannot exist here; the agent still runs them as real child processes.
 */
export function fakeBin(dir: string, name: string, body = 'exit 0'): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const file = path.join(bin, name);
  writeFileSync(file, `#!/bin/sh\necho "${name} $*" >> "${path.join(dir, 'calls.log')}"\n${body}\n`);
  chmodSync(file, 0o755);
  return bin;
}

export function calls(dir: string): string[] {
  const f = path.join(dir, 'calls.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

/** A test PATH: the fake bin dir first, then the system's, so sh/sleep/echo still resolve. */
export function testPath(binDir: string): string {
  return `${binDir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`;
}

/** True when the process is gone or a zombie (PID 1 here does not reap orphans). */
export function isDead(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 is the state; the command name in parentheses may contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}
