/**
 * Every command starts in a private temporary directory of its own, removed afterwards (docs/security.md
 * § The walls, 8), so it never writes where the agent lives. Making one is a mkdir in the temp dir, which
 * took 0.1–0.5 ms of the request's path here (docs/performance.md § Less work per request): a WorkDirs
 * makes the next few on the thread pool while commands run, and hands one out at once.
 *
 * A spare is what mkdtemp makes, mode 0700 and the agent's own, and it is used once: no other user can
 * enter it before it is handed to the command's user. Commands that run as the agent's own user (no run
 * user, docs/security.md § Commands run as another user) could reach it, as they can reach everything
 * the agent has; one that swapped a spare for a symlink or loosened it is caught by the lstat at take().
 */
import { lstatSync, mkdtempSync, rmdirSync } from 'node:fs';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export class WorkDirs {
  private readonly spares: string[] = [];
  private making = 0;
  private closed = false;
  private readonly prefix = workDirPrefix();

  constructor(
    /** How many to keep made ahead: a burst beyond it makes its own on the main thread, as before. */
    private readonly ahead: number,
  ) {}

  /** Spares ready to hand out now. */
  get ready(): number {
    return this.spares.length;
  }

  /** A new empty directory for one command: a spare when one is ready and still as it was made. */
  take(): string {
    let dir = this.spares.pop();
    if (dir !== undefined && !asMade(dir)) dir = undefined; // left where it is: it is not ours to remove
    this.refill();
    return dir ?? mkdtempSync(this.prefix);
  }

  /** Makes the spares (on the thread pool). */
  start(): void {
    this.refill();
  }

  /** No more commands: the spares go now, not in the background the process may not outlive. */
  close(): void {
    this.closed = true;
    for (const dir of this.spares.splice(0)) removeSpare(dir);
  }

  private refill(): void {
    while (!this.closed && this.spares.length + this.making < this.ahead) {
      this.making++;
      mkdtemp(this.prefix).then(
        (dir) => {
          this.making--;
          if (this.closed) removeSpare(dir);
          else this.spares.push(dir);
        },
        // A full or read-only temp dir: take() makes its own and fails the command with what the OS said.
        () => void this.making--,
      );
    }
  }
}

/** Still a directory (not a symlink put in its place), the agent's own, mode 0700. */
function asMade(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o7777) === 0o700;
  } catch {
    return false;
  }
}

/** An unused spare is empty: one rmdir, at once. */
function removeSpare(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Gone already, or the temp dir went read-only: nothing of ours is in it.
  }
}

/** A command's private directory without a WorkDirs (probes, update checks): made on the spot. */
export function makeWorkDir(): string {
  return mkdtempSync(workDirPrefix());
}

/** Where they go: the temp dir as the environment says (the unit's PrivateTmp gives the agent its own). */
function workDirPrefix(): string {
  return path.join(os.tmpdir(), 'homelab-cmd-');
}

/**
 * In the background, off the result's path. Most commands leave their directory empty: one rmdir, where
 * a recursive rm first looks at every entry (an lstat per request on the thread pool).
 */
export function removeWorkDir(dir: string): void {
  void rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }).catch(() => undefined));
}
