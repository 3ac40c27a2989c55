/**
 * A throwaway copy of this machine for running the install docs as written.
 *
 * Each command runs in a private mount namespace (unshare -m) where /etc, /usr,
 * /var, /run and $HOME are overlays whose writes land in a temp dir, and /tmp is
 * a temp dir of its own. So `useradd`, `npm install -g`, `install … /etc/sudoers.d/…`
 * and `userdel` really run, as root, with real sudo and real setuid — and the
 * machine is untouched when the test ends (nothing to clean up but the temp dir).
 * The network is shared: the agent inside reaches the test's broker on loopback.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, tempDir } from './fixtures.js';
import { slack } from './wait.js';

const OVERLAID = ['/etc', '/usr', '/var', '/run', os.homedir()];

/** Why a sandbox cannot be made here, or undefined when it can (root, unshare, overlayfs). */
export const sandboxUnavailable: string | undefined = (() => {
  if (process.getuid?.() !== 0)
    return 'the install docs run as root in a private mount namespace: run the tests as root (CI does)';
  const probe = spawnSync(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'd=$(mktemp -d) && mkdir $d/u $d/w && mount -t overlay overlay -o lowerdir=/etc,upperdir=$d/u,workdir=$d/w /etc; r=$?; umount /etc 2>/dev/null; rm -rf $d; exit $r',
    ],
    { encoding: 'utf8' },
  );
  if (probe.error || probe.status !== 0)
    return `unshare -m with an overlay on /etc failed (${probe.error?.message ?? probe.stderr.trim()}): needs CAP_SYS_ADMIN and overlayfs`;
  return undefined;
})();

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class Sandbox {
  /**
   * One mount namespace for the sandbox's whole life, held by a `sleep`, which every run
   * enters (nsenter): mounting the same overlay dirs once per run would leave earlier mounts
   * alive under stray processes (npm's update check), and two mounts of one upper dir disagree.
   */
  private constructor(
    readonly dir: string,
    private readonly holder: ChildProcess,
    private readonly ns: string,
  ) {}

  static async create(): Promise<Sandbox> {
    const dir = tempDir('hc-sandbox-');
    const mounts = OVERLAID.map((d, i) => {
      mkdirSync(path.join(dir, `o${i}/up`), { recursive: true });
      mkdirSync(path.join(dir, `o${i}/work`), { recursive: true });
      return `mount -t overlay overlay -o lowerdir=${d},upperdir=${dir}/o${i}/up,workdir=${dir}/o${i}/work ${d}`;
    });
    mkdirSync(path.join(dir, 'tmp'));
    // The cwd persists between runs in a file (inside: /tmp/.cwd), like one long terminal session.
    writeFileSync(path.join(dir, 'tmp/.cwd'), os.homedir());
    // A checkout that lives under /tmp (a fresh clone in CI) would vanish behind the sandbox's own /tmp,
    // and the docs clone it: it stays visible at its own path, read-only.
    const repo = realpathSync(REPO);
    const inTmp = path.relative('/tmp', repo);
    const keepRepo =
      inTmp !== '' && !inTmp.startsWith('..') && !path.isAbsolute(inTmp)
        ? [
            `mkdir -p ${dir}/tmp/${inTmp}`,
            `mount --bind ${repo} ${dir}/tmp/${inTmp}`,
            `mount -o remount,bind,ro ${dir}/tmp/${inTmp}`,
          ]
        : [];
    const setup = [
      'set -e',
      ...mounts,
      ...keepRepo,
      `mount --rbind ${dir}/tmp /tmp`,
      'chmod 1777 /tmp',
      'echo ready',
      'exec sleep infinity',
    ].join('\n');
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'bash', '-c', setup], {
      cwd: path.join(dir, 'tmp'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    holder.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise<void>((resolve, reject) => {
      holder.stdout?.once('data', () => resolve());
      holder.once('exit', (code) =>
        reject(new Error(`the sandbox's mount namespace could not be set up (exit ${code}): ${err}`)),
      );
    });
    return new Sandbox(dir, holder, readlinkSync(`/proc/${holder.pid}/ns/mnt`));
  }

  private argv(script: string, opts: { keepCwd?: boolean } = {}): string[] {
    const body = opts.keepCwd ? `${script}\npwd > /tmp/.cwd` : script;
    // Refuse to run anywhere but the session's directory: a relative path must never land in the checkout.
    return [
      '-t',
      String(this.holder.pid),
      '-m',
      '--',
      'bash',
      '-c',
      'd=$(cat /tmp/.cwd) && [ -n "$d" ] && cd "$d" && exec bash -c "$0"',
      body,
    ];
  }

  private env(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    // A login-like environment: the test runner's variables (npm_*, NODE_OPTIONS, VITEST) stay out.
    return {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: os.homedir(),
      USER: 'root',
      LOGNAME: 'root',
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      ...extra,
    };
  }

  /** Runs a bash script to completion inside the sandbox; `keepCwd` carries a `cd` to the next run. */
  run(
    script: string,
    opts: { stdin?: string; env?: NodeJS.ProcessEnv; keepCwd?: boolean; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const child = spawn('nsenter', this.argv(script, opts), {
      cwd: path.join(this.dir, 'tmp'),
      env: this.env(opts.env ?? {}),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.end(opts.stdin ?? '');
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? slack(120_000));
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** run(), failing with its output unless it exits 0. */
  async must(script: string, opts: Parameters<Sandbox['run']>[1] = {}): Promise<RunResult> {
    const r = await this.run(script, opts);
    if (r.code !== 0) throw new Error(`in the sandbox, exit ${r.code}: ${script}\n${r.stdout}${r.stderr}`);
    return r;
  }

  /** Starts a long-running program inside the sandbox (nsenter execs it: `proc` is the program); stop() kills what is left. */
  start(
    script: string,
    env: NodeJS.ProcessEnv = {},
  ): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const proc = spawn('nsenter', this.argv(script), {
      cwd: path.join(this.dir, 'tmp'),
      env: this.env(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    return { proc, output: () => out, exited };
  }

  /** Writes a file the sandbox sees as /tmp/<name> (its /tmp is a directory of ours); returns that path. */
  writeTmp(name: string, content: string, mode = 0o644): string {
    writeFileSync(path.join(this.dir, 'tmp', name), content, { mode });
    return `/tmp/${name}`;
  }

  /** A file as the sandbox sees it, or undefined when it does not exist there. */
  async read(file: string): Promise<string | undefined> {
    const r = await this.run(`cat -- '${file}'`);
    return r.code === 0 ? r.stdout : undefined;
  }

  stop(): void {
    // Everything still running in the sandbox's namespace (the holder, an agent, npm's stray children).
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readlinkSync(`/proc/${pid}/ns/mnt`) === this.ns) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already, or not ours to read
      }
    }
    // The overlays' work dirs hold root-owned 000 entries: rm as root handles them.
    rmSync(this.dir, { recursive: true, force: true });
  }
}
