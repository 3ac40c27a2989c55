/**
 * Files in state_dir: written atomically (write, fsync, rename), read through a
 * zod schema. A corrupt or unreadable file is moved aside with a warning and
 * the agent starts from the fallback — never a crash loop.
 */
import {
  accessSync,
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { HomelabError } from '../errors.js';
import type { Logger } from '../log.js';

export class JsonStateFile<T> {
  readonly file: string;

  constructor(
    dir: string,
    name: string,
    private readonly schema: z.ZodType<T>,
    private readonly log: Logger,
    /** What the file holds, for messages: "the record of published discovery". */
    private readonly what: string,
  ) {
    this.file = path.join(dir, name);
  }

  read(fallback: T): T {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
      this.log.warn(
        { file: this.file, err: (err as Error).message },
        `could not read ${this.what}; starting without it`,
      );
      return fallback;
    }
    try {
      const parsed = this.schema.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data;
      throw new Error(parsed.error.issues[0]?.message ?? 'unexpected content');
    } catch (err) {
      const aside = moveAside(this.file);
      this.log.warn(
        { file: this.file, movedTo: aside, err: (err as Error).message },
        `${this.what} was corrupt; moved it aside and started without it`,
      );
      return fallback;
    }
  }

  write(value: T): void {
    try {
      writeAtomic(this.file, `${JSON.stringify(value, null, 1)}\n`);
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, `could not save ${this.what}`);
    }
  }
}

/** Renames a bad file out of the way (keeping it for a post-mortem); returns where it went. */
export function moveAside(file: string): string {
  const aside = `${file}.corrupt-${Date.now()}`;
  try {
    renameSync(file, aside);
  } catch {
    // Unrenameable (read-only dir): the caller still starts without it.
  }
  return aside;
}

/** write, fsync, rename: a reader sees the old file or the new one, never half of one. */
export function writeAtomic(file: string, data: string): void {
  const tmp = `${file}${TEMP_SUFFIX}${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    // A full disk (ENOSPC) must not leave half a file behind, nor fill the disk further with it.
    rmSync(tmp, { force: true });
    throw err;
  }
}

const TEMP_SUFFIX = '.tmp-';
/** Our own temp names only (`journal.jsonl.tmp-1234`): nothing else in state_dir is touched. */
const OUR_TEMP = /^[a-z][a-z0-9_.-]*\.tmp-\d+$/;

/** At start: temp files a killed agent left behind (docs/operations.md § The state directory). */
export function removeStaleTemps(dir: string, log: Logger): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // No directory yet, or unreadable: ensureWritableDir says so.
  }
  for (const name of names.filter((n) => OUR_TEMP.test(n))) {
    try {
      rmSync(path.join(dir, name), { force: true });
      log.info({ file: path.join(dir, name) }, 'removed a temp file a stopped agent left behind');
    } catch (err) {
      log.warn(
        { file: path.join(dir, name), err: (err as Error).message },
        'could not remove a stale temp file',
      );
    }
  }
}

export function ensureWritableDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new HomelabError(
      'state_dir',
      `state_dir ${dir} is not a writable directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}) — create it and give the agent's user write access, or set state_dir in the config`,
    );
  }
}
