/** The running `up`'s record: believed only when this user wrote it and its process lives. */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readUpRecord, upRecordPath, writeUpRecord } from '../../src/cli/up-record.js';
import { tempDir } from '../helpers/fixtures.js';

function runtimeEnv(): NodeJS.ProcessEnv {
  const run = tempDir('hc-run-');
  chmodSync(run, 0o700);
  return { XDG_RUNTIME_DIR: run, HOME: tempDir() };
}

const record = {
  url: 'mqtt://127.0.0.1:41234',
  prefix: 'homelab',
  pid: process.pid,
  config: '/x/agent.yaml',
};

/** Writes a record by hand, as another program might. */
function plant(env: NodeJS.ProcessEnv, body: unknown, mode = 0o600): string {
  const file = upRecordPath(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(body), { mode });
  chmodSync(file, mode);
  return file;
}

describe('up.json', () => {
  it('lives in $XDG_RUNTIME_DIR/homelab-cmd, else in the state dir', () => {
    expect(upRecordPath({ XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/user/1000/homelab-cmd/up.json');
    expect(upRecordPath({ XDG_STATE_HOME: '/s' })).toBe('/s/homelab-cmd/up.json');
    expect(upRecordPath({ XDG_RUNTIME_DIR: 'relative', XDG_STATE_HOME: '/s' })).toBe(
      '/s/homelab-cmd/up.json',
    );
  });

  it('is written 0600 and read back; removing it at exit deletes it', () => {
    const env = runtimeEnv();
    const remove = writeUpRecord(record, env);
    expect(statSync(upRecordPath(env)).mode & 0o777).toBe(0o600);
    expect(readUpRecord(env)).toEqual(record);
    remove();
    expect(existsSync(upRecordPath(env))).toBe(false);
    expect(readUpRecord(env)).toBeUndefined();
  });

  it('removing leaves a newer up’s record alone', () => {
    const env = runtimeEnv();
    const remove = writeUpRecord({ ...record, pid: 1 }, env);
    writeUpRecord(record, env);
    remove();
    expect(readUpRecord(env)).toEqual(record);
  });

  it('is ignored when its process is gone', async () => {
    const env = runtimeEnv();
    const child = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => child.once('exit', r));
    plant(env, { ...record, pid: child.pid });
    expect(readUpRecord(env)).toBeUndefined();
  });

  it.each([
    ['group-writable', 0o620],
    ['world-writable', 0o602],
  ])('is ignored when %s', (_what, mode) => {
    const env = runtimeEnv();
    plant(env, record, mode);
    expect(readUpRecord(env)).toBeUndefined();
  });

  it('is ignored when its directory is writable by others', () => {
    const env = runtimeEnv();
    const file = plant(env, record);
    chmodSync(path.dirname(file), 0o777);
    expect(readUpRecord(env)).toBeUndefined();
  });

  it.skipIf(process.getuid?.() !== 0)('is ignored when another user owns it (a hostile file)', () => {
    const env = runtimeEnv();
    const file = plant(env, record);
    chownSync(file, 65534, 65534);
    expect(readUpRecord(env)).toBeUndefined();
  });

  it('is ignored when it is a symlink, or not the shape up writes', () => {
    const env = runtimeEnv();
    const elsewhere = path.join(tempDir(), 'up.json');
    writeFileSync(elsewhere, JSON.stringify(record), { mode: 0o600 });
    mkdirSync(path.dirname(upRecordPath(env)), { recursive: true, mode: 0o700 });
    symlinkSync(elsewhere, upRecordPath(env));
    expect(readUpRecord(env)).toBeUndefined();

    for (const bad of [
      { ...record, url: 'mqtt://user:pw@127.0.0.1:1883' },
      { ...record, prefix: 'home/#' },
      { ...record, extra: true },
      'not json',
    ]) {
      const e = runtimeEnv();
      plant(e, bad);
      expect(readUpRecord(e), JSON.stringify(bad)).toBeUndefined();
    }
  });
});
