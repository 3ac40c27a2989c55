/**
 * Layer 1 of 4 (retry → rollback → steps → spawn), the bottom: what it adds over node:child_process
 * is running one argv safely — no shell, stdin closed, its own process group, a clean environment,
 * output capped while reading, and a timeout that kills the whole group (SIGTERM, then SIGKILL after
 * a grace) so grandchildren die too — and every descendant found in /proc, which catches the ones
 * that left the group with setsid (docs/security.md § Limits). Jobs, sudo and statuses are the
 * steps layer's (exec/steps.ts); probes and update checks call this layer directly.
 */
import { chownSync } from 'node:fs';
import os from 'node:os';
import { spawn } from 'node:child_process';
import { CappedBuffer } from './capture.js';
import { descendantsOf } from './descendants.js';
import { makeWorkDir, removeWorkDir, type WorkDirs } from './work-dirs.js';

export interface RunSpec {
  argv: string[];
  /** The child's whole environment: nothing is inherited from the agent. */
  env: Record<string, string>;
  timeoutMs: number;
  maxOutput: number;
  /** Between SIGTERM and SIGKILL of the group on timeout. */
  killGraceMs?: number;
  /** Aborting kills the group like a timeout does, and the outcome is `interrupted`. */
  signal?: AbortSignal;
  /** The child's pid, once spawned: it leads its own process group (the journal records it). */
  onSpawn?: ((pid: number) => void) | undefined;
  /** Every chunk as it comes (live output); the capture above is unaffected. */
  onOutput?: ((stream: 'stdout' | 'stderr', chunk: Buffer) => void) | undefined;
  /** Start the child as this user (the agent is root); node clears its supplementary groups. */
  uid?: number | undefined;
  gid?: number | undefined;
  /** The private working directory is handed to this user, who runs the command. */
  workDirOwner?: { uid: number; gid: number } | undefined;
  /** Start in `/`: the command's user could not enter a directory of the agent's. */
  rootCwd?: boolean | undefined;
  /** Where the private working directory comes from (made ahead); without it, made on the spot. */
  workDirs?: WorkDirs | undefined;
}

export type RunKind = 'exited' | 'timed_out' | 'interrupted' | 'not_found' | 'spawn_failed';

export interface RunOutcome {
  kind: RunKind;
  /** The process's code; -1 when killed for the timeout or nothing ran; 127 when not found. */
  exitCode: number;
  signal: string | undefined;
  stdout: { text: string; truncated: boolean };
  stderr: { text: string; truncated: boolean };
  startedAt: Date;
  durationMs: number;
  /** For spawn failures: what the OS said. */
  error?: string;
}

const DEFAULT_KILL_GRACE_MS = 5000;
// After the main process exits, leftovers that still hold its stdout get this long, then the group is killed.
const DRAIN_MS = 1000;

export async function runCommand(spec: RunSpec): Promise<RunOutcome> {
  const [file, ...args] = spec.argv;
  if (file === undefined) throw new Error('runCommand: empty argv');
  const startedAt = new Date();
  const t0 = performance.now();
  const stdout = new CappedBuffer(spec.maxOutput);
  const stderr = new CappedBuffer(spec.maxOutput);
  // A private working directory, so a command never writes where the agent lives (work-dirs.ts); none
  // for one that starts in `/`.
  const cwd = spec.rootCwd ? undefined : (spec.workDirs?.take() ?? makeWorkDir());

  try {
    // Inside the try: a chown refused (a container without CHOWN) still removes the directory.
    if (cwd && spec.workDirOwner) chownSync(cwd, spec.workDirOwner.uid, spec.workDirOwner.gid);
    // node:child_process, not execa: execa added 0.2-0.35 ms and 17-23 % less throughput at 16 in flight
    // per spawn (bench/spawn-micro.mjs, quiet runs), and this runner uses none of what it adds on top of spawn.
    const child = spawn(file, args, {
      cwd: cwd ?? '/',
      ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
      ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
      env: spec.env, // the whole environment: nothing of the agent's is inherited
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: the timeout kills the whole tree
      windowsHide: true,
    });
    if (child.pid !== undefined) spec.onSpawn?.(child.pid);

    child.stdout?.on('data', (c: Buffer) => {
      stdout.push(c);
      spec.onOutput?.('stdout', c);
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr.push(c);
      spec.onOutput?.('stderr', c);
    });
    const streamsClosed = Promise.all([closed(child.stdout), closed(child.stderr)]);

    let timedOut = false;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    // Descendants seen at the first kill: a setsid child has left the group, and after the SIGTERM its
    // parent may die and leave it without a parent chain to find it by.
    const seen = new Set<number>();
    let exited = false;
    child.once('exit', () => (exited = true));
    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      // Only while the child lives: once reaped, its pid may belong to someone else.
      if (!exited) for (const pid of descendantsOf(child.pid)) seen.add(pid);
      for (const target of [-child.pid, ...seen]) {
        try {
          process.kill(target, signal);
        } catch {
          // ESRCH: gone already; EPERM: another user's (a sudo command's own timeout kills those).
        }
      }
    };
    const terminate = () => {
      if (killTimer) return;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, spec.timeoutMs);
    const onAbort = () => {
      aborted = true;
      terminate();
    };
    if (spec.signal?.aborted) onAbort();
    spec.signal?.addEventListener('abort', onAbort, { once: true });

    const exit = await new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      error?: NodeJS.ErrnoException;
    }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    });
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);

    if (exit.error === undefined) {
      const drained = await Promise.race([streamsClosed.then(() => true), delay(DRAIN_MS).then(() => false)]);
      if (!drained || timedOut || aborted) {
        // Leftover grandchildren keep the pipes open: they die with the command's group.
        killGroup('SIGKILL');
        child.stdout?.destroy();
        child.stderr?.destroy();
      }
    }
    clearTimeout(killTimer);

    const base = {
      stdout: stdout.result(),
      stderr: stderr.result(),
      startedAt,
      durationMs: Math.round(performance.now() - t0),
    };
    if (exit.error) {
      const notFound = exit.error.code === 'ENOENT';
      return {
        ...base,
        kind: notFound ? 'not_found' : 'spawn_failed',
        exitCode: notFound ? 127 : -1,
        signal: undefined,
        error: exit.error.code === 'EACCES' ? `${file} is not executable` : exit.error.message,
      };
    }
    if (aborted) return { ...base, kind: 'interrupted', exitCode: -1, signal: exit.signal ?? undefined };
    if (timedOut) return { ...base, kind: 'timed_out', exitCode: -1, signal: exit.signal ?? undefined };
    return {
      ...base,
      kind: 'exited',
      exitCode: exit.code ?? 128 + signalNumber(exit.signal),
      signal: exit.signal ?? undefined,
    };
  } finally {
    if (cwd) removeWorkDir(cwd);
  }
}

function closed(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', () => resolve());
    stream.once('end', () => resolve());
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (os.constants.signals[signal] ?? 0) : 0;
}
