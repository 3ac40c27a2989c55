/**
 * Where a running `homelab-cmd up` says which broker it started, so `send`, `status`, `explain` and
 * `discovery` find it with no flags on whatever port it got (docs/operations.md § The running up).
 * The file is a pointer to a broker the CLI will talk to, so only one this user wrote is believed:
 * a regular file (no symlink), owned by this user, writable by no one else, naming a live process.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { defaultStateDir } from '../config/load.js';
import { TOPIC_PREFIX_RE } from '../core/names.js';

const UpRecordSchema = z
  .object({
    url: z.string().regex(/^mqtt:\/\/[^\s/@]+$/),
    prefix: z.string().regex(TOPIC_PREFIX_RE),
    pid: z.number().int().positive(),
    config: z.string().refine((f) => path.isAbsolute(f)),
  })
  .strict();

export type UpRecord = z.infer<typeof UpRecordSchema>;

/** $XDG_RUNTIME_DIR/homelab-cmd/up.json (private to the login, gone at logout), else the state dir. */
export function upRecordPath(env: NodeJS.ProcessEnv = process.env): string {
  const run = env.XDG_RUNTIME_DIR;
  return run && path.isAbsolute(run)
    ? path.join(run, 'homelab-cmd', 'up.json')
    : path.join(defaultStateDir(env), 'up.json');
}

/** Writes the record (mode 0600, atomically); returns the function that removes it at exit. */
export function writeUpRecord(record: UpRecord, env: NodeJS.ProcessEnv = process.env): () => void {
  const file = upRecordPath(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeFileSync(fd, `${JSON.stringify(record)}\n`);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return () => {
    // A second `up` may have written its own since: remove only ours.
    if (readRaw(file)?.pid === record.pid) rmSync(file, { force: true });
  };
}

/** The running `up` of this user on this machine, or undefined (no file, or one not to be believed). */
export function readUpRecord(env: NodeJS.ProcessEnv = process.env): UpRecord | undefined {
  const file = upRecordPath(env);
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  try {
    const dir = lstatSync(path.dirname(file));
    if (!dir.isDirectory() || dir.uid !== uid || (dir.mode & 0o022) !== 0) return undefined;
  } catch {
    return undefined;
  }
  const record = readRaw(file, uid);
  return record && alive(record.pid) ? record : undefined;
}

function readRaw(file: string, uid = process.getuid?.()): UpRecord | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0 || st.size > 4096) return undefined;
    const parsed = UpRecordSchema.safeParse(JSON.parse(readFileSync(fd, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone; EPERM: a process of another user reuses the pid — not our `up` either way.
    return false;
  }
}
