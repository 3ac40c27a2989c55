/** The `up` banner spells the CLI as it was installed, and never sends a global install to npx. */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandForm } from '../../src/cli/command-form.js';
import { REPO, tempDir } from '../helpers/fixtures.js';

/** A package directory named homelab-cmd with its bin, under `root`. */
function pkg(root: string): string {
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'homelab-cmd' }));
  const bin = path.join(root, 'bin', 'homelab-cmd.js');
  writeFileSync(bin, '');
  return bin;
}

describe('commandForm', () => {
  it('installed globally (on PATH): homelab-cmd, wherever the shell is', () => {
    const prefix = tempDir();
    const bin = pkg(path.join(prefix, 'lib/node_modules/homelab-cmd'));
    mkdirSync(path.join(prefix, 'bin'));
    symlinkSync(bin, path.join(prefix, 'bin', 'homelab-cmd'));
    const pathEnv = `/usr/bin:${path.join(prefix, 'bin')}`;
    expect(commandForm({ bin, cwd: tempDir(), pathEnv })).toBe('homelab-cmd');
    // Even inside a checkout of the project: what runs is the global one.
    expect(commandForm({ bin, cwd: REPO, pathEnv })).toBe('homelab-cmd');
  });

  it('in a checkout (npm start): npx homelab-cmd, also from a subdirectory', () => {
    const root = tempDir();
    const bin = pkg(root);
    mkdirSync(path.join(root, 'docs'));
    expect(commandForm({ bin, cwd: root, pathEnv: '/usr/bin' })).toBe('npx homelab-cmd');
    expect(commandForm({ bin, cwd: path.join(root, 'docs'), pathEnv: '/usr/bin' })).toBe('npx homelab-cmd');
    expect(commandForm({ bin: path.join(REPO, 'bin/homelab-cmd.js'), cwd: REPO, pathEnv: '' })).toBe(
      'npx homelab-cmd',
    );
  });

  it('in a project that installed it: npx homelab-cmd, though npx put its node_modules/.bin on PATH', () => {
    const project = tempDir();
    const bin = pkg(path.join(project, 'node_modules/homelab-cmd'));
    mkdirSync(path.join(project, 'node_modules/.bin'));
    symlinkSync(bin, path.join(project, 'node_modules/.bin/homelab-cmd'));
    const pathEnv = `${path.join(project, 'node_modules/.bin')}:/usr/bin`;
    expect(commandForm({ bin, cwd: project, pathEnv })).toBe('npx homelab-cmd');
  });

  it('anywhere else: node and the path of this bin — never npx, which would ask the registry', () => {
    const root = tempDir();
    const bin = pkg(path.join(root, 'opt/homelab-cmd'));
    expect(commandForm({ bin, cwd: tempDir(), pathEnv: '/usr/bin' })).toBe(`node ${bin}`);
    // A different copy of homelab-cmd in the current directory is not this one.
    const other = tempDir();
    pkg(other);
    expect(commandForm({ bin, cwd: other, pathEnv: '/usr/bin' })).toBe(`node ${bin}`);
  });
});
