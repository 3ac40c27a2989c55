import { spawn, type ChildProcess } from 'node:child_process';
import { Agent } from '../../src/agent/agent.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { setUpAgentProcess } from '../../src/cli/serve.js';
import { stringify as toYaml } from 'yaml';
// Configs refuse YAML anchors and aliases, which stringify writes for an object used twice.
const stringify = (value: unknown): string => toYaml(value, { aliasDuplicateObjects: false });
import { CLI_ENTRY, REPO } from './fixtures.js';
import { reaped } from './reaper.js';

/** An in-process agent from a config object; the same code path as `homelab-cmd agent`. */
export async function startAgent(
  config: Record<string, unknown>,
  source = '/test/agent.yaml',
): Promise<{ agent: Agent; config: Config }> {
  const cfg = parseConfig(stringify(config), source);
  setUpAgentProcess();
  const agent = new Agent(cfg, silentLogger(), { backoff: { initialMs: 50, maxMs: 500 } });
  agent.start();
  await agent.waitConnected(10_000);
  return { agent, config: cfg };
}

export interface AgentProcess {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `homelab-cmd <verb> …` as a real child process (for SIGKILL / SIGTERM tests). */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): AgentProcess {
  const proc = reaped(
    spawn(process.execPath, [CLI_ENTRY, ...args], {
      cwd: REPO,
      env: { ...process.env, HOMELAB_CMD_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, output: () => out, exited };
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = reaped(
    spawn(process.execPath, [CLI_ENTRY, ...args], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}
