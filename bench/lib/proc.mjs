/**
 * Processes the bench starts, and what /proc says about them. Every child is
 * registered so that an error or Ctrl-C still ends each one (by its pid).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BENCH = path.join(REPO, 'bench');
export const BIN = path.join(REPO, 'bin', 'homelab-cmd.js');
export const MOSQUITTO = '/usr/sbin/mosquitto';
export const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64 and arm64

const children = new Set();
const tempDirs = new Set();

export function tempDir(prefix = 'hc-bench-') {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Kills what is still running (each by its own pid) and removes the temp dirs (unless keepDirs: logs, state, configs). */
export function cleanupAll({ keepDirs = false } = {}) {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  if (keepDirs) process.stderr.write(`kept: ${[...tempDirs].join(' ')}\n`);
  else for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * A child process whose stdout lines can be awaited. stderr goes to a log file
 * (or is ignored), never to an unread pipe: the agent logs synchronously and would block on a full one.
 */
export function startChild(cmd, args, { env = {}, logFile, cwd = REPO } = {}) {
  const errFd = logFile ? openSync(logFile, 'a') : 'ignore';
  const proc = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', errFd] });
  if (typeof errFd === 'number') closeSync(errFd);
  children.add(proc);
  const startedAt = performance.now();
  let buf = '';
  const lines = [];
  const waiters = [];
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) if (!w(line)) waiters.push(w);
    }
  });
  const exited = new Promise((resolve) =>
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    }),
  );
  return {
    proc,
    pid: proc.pid,
    startedAt,
    exited,
    lines,
    /** The first stdout line (seen or to come) that pred accepts. */
    waitLine(pred, ms = 60_000, what = 'a line') {
      const seen = lines.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(
              new Error(
                `timed out after ${ms} ms waiting for ${what} from ${cmd} ${args.join(' ')}${logFile ? ` (log: ${logFile})` : ''}`,
              ),
            ),
          ms,
        );
        exited.then(
          ({ code, signal }) =>
            reject(
              new Error(
                `${path.basename(args[0] ?? cmd)} exited (${code ?? signal}) before ${what}${logFile ? `: ${tail(logFile)}` : ''}`,
              ),
            ),
          () => undefined,
        );
        waiters.push((line) => {
          if (!pred(line)) return false;
          clearTimeout(t);
          resolve(line);
          return true;
        });
      });
    },
    /** SIGTERM, then SIGKILL after graceMs; resolves when it is gone. */
    async stop(graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').slice(-600);
  } catch {
    return '(no log)';
  }
}

/** A port the OS says is free now; never a fixed one (the machine's Mosquitto holds 1883). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on 127.0.0.1:${port} within ${ms} ms`);
    await sleep(20);
  }
}

/** Resident set now and at its peak, in MB. */
export function memOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** User + system CPU seconds the process has used so far. */
export function cpuSecondsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** An embedded broker (startBroker from dist/) in its own process, so its RSS is its own. */
export async function startEmbeddedBroker(dir) {
  const child = startChild(process.execPath, [path.join(BENCH, 'broker-proc.mjs')], {
    logFile: path.join(dir, 'broker.log'),
  });
  const line = await child.waitLine((l) => l.startsWith('port '), 15_000, 'the embedded broker to listen');
  const port = Number(line.slice(5));
  return {
    kind: 'embedded',
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () => child.stop(),
  };
}

/** A Mosquitto of our own on a free loopback port; `nodelay` sets `set_tcp_nodelay true`. */
export async function startMosquitto(dir, { nodelay }) {
  const port = await freePort();
  const conf = path.join(dir, `mosquitto-${port}.conf`);
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest none',
      'max_queued_messages 100000',
      ...(nodelay ? ['set_tcp_nodelay true'] : []),
      '',
    ].join('\n'),
  );
  const child = startChild(MOSQUITTO, ['-c', conf], { logFile: path.join(dir, `mosquitto-${port}.log`) });
  await Promise.race([
    waitForPort(port),
    child.exited.then(({ code }) => Promise.reject(new Error(`mosquitto exited (${code}); see ${dir}`))),
  ]);
  return {
    kind: nodelay ? 'mosquitto-nodelay' : 'mosquitto-stock',
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () => child.stop(),
  };
}

export function mosquittoVersion() {
  return new Promise((resolve) => {
    const p = spawn(MOSQUITTO, ['-h'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.on('data', (c) => (out += c));
    p.once('error', () => resolve(undefined));
    p.once('exit', () => resolve(/mosquitto version (\S+)/.exec(out)?.[1]));
  });
}
