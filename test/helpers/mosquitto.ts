import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './net.js';
import { reaped } from './reaper.js';

export function findBinary(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

export const MOSQUITTO = findBinary('mosquitto');

/** Say loudly, once per file, what is skipped and why. */
export function reportMissing(binary: string, what: string): void {
  process.stderr.write(
    `\n*** SKIPPED: ${what} — the "${binary}" binary is not installed (CI installs it with apt-get) ***\n\n`,
  );
}

export interface MosquittoProcess {
  port: number;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  /** Start again on the same port (a broker restart). */
  restart(): Promise<void>;
}

/** A real Mosquitto on a free loopback port with its own config (never the machine's 1883). */
export async function startMosquitto(extraConf = ''): Promise<MosquittoProcess> {
  if (!MOSQUITTO) throw new Error('mosquitto is not installed');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hc-mosq-'));
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n${extraConf}\n`,
  );
  let proc: ChildProcess;
  const launch = async () => {
    proc = reaped(spawn(MOSQUITTO!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let log = '';
    proc.stderr?.on('data', (c: Buffer) => (log += c.toString()));
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${log}`))),
    );
    await Promise.race([waitForPort(port), exited]);
  };
  await launch();
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await gone;
  };
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get proc() {
      return proc;
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}
