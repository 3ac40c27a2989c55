/**
 * Each integration test file gets its own default state and runtime directories. Without this, a
 * `broker` or `up` a test spawns without a `broker.state_dir` takes the user's default one
 * (docs/configuration.md § state_dir), and a second file's broker on the same machine is refused
 * ("in use by another homelab-cmd broker"): a test that passes alone and fails next to another.
 * Tests that set XDG_STATE_HOME / XDG_RUNTIME_DIR themselves still win; the docs walkthroughs run
 * in a sandbox with a clean environment and an overlaid home of their own.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './fixtures.js';

const root = tempDir('hc-xdg-');
process.env.XDG_STATE_HOME = path.join(root, 'state');
process.env.XDG_RUNTIME_DIR = path.join(root, 'run');
mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
