/**
 * One check of one probe: the I/O behind each kind. http, tcp, disk and
 * process need no child process; ping and service run a fixed argv through
 * the spawn layer, exec/spawn.ts (no shell, the fixed PATH, a timeout that
 * kills the process group). A check never throws: what went wrong is its reading.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import net from 'node:net';
import { formatDuration } from '../core/duration.js';
import {
  diskReading,
  emptyExtra,
  firstLine,
  networkError,
  pingArgv,
  pingReading,
  processMatches,
  serviceArgv,
  statusAccepted,
  describeStatus,
  timeoutError,
  type ProbeReading,
} from '../core/probes.js';
import type { ProbeConfig, ProbeOf } from '../config/probes.js';
import { httpRequest } from '../exec/http-request.js';
import { runCommand } from '../exec/spawn.js';
import { childEnv } from '../exec/steps.js';
import { VERSION } from '../version.js';
import { checkCommand, type CommandContext } from './command-probe.js';

export interface CheckContext {
  /** execution.path: the whole PATH of ping and systemctl. */
  path: string;
  /** Aborted when the agent stops: the check ends at once, and its reading is thrown away. */
  signal: AbortSignal;
  /** What a command probe runs with: the config's execution and security, and the run user. */
  command?: Omit<CommandContext, 'signal'> | undefined;
}

// Enough of a body for a health page's "ok"; a probe never downloads a file.
const MAX_BODY = 64 * 1024;
// What a probe's program prints is a word or a summary; the rest is not kept.
const MAX_OUTPUT = 4096;
const KILL_GRACE_MS = 1000;

export async function runCheck(probe: ProbeConfig, ctx: CheckContext): Promise<ProbeReading> {
  try {
    switch (probe.type) {
      case 'http':
        return await withDeadline(probe, ctx, (signal) => checkHttp(probe, signal));
      case 'tcp':
        return await withDeadline(probe, ctx, (signal) => checkTcp(probe, signal));
      case 'ping':
        return await checkPing(probe, ctx);
      case 'service':
        return await checkService(probe, ctx);
      case 'disk':
        return await checkDisk(probe);
      case 'process':
        return await withDeadline(probe, ctx, (signal) => checkProcess(probe, signal));
      case 'command':
        if (!ctx.command) throw new Error('a command probe needs the execution settings');
        return await checkCommand(probe, { ...ctx.command, signal: ctx.signal });
    }
  } catch (err) {
    return {
      ok: false,
      value: null,
      error: `the check failed: ${(err as Error).message}`,
      extra: emptyExtra(probe.type),
    };
  }
}

/** Runs `check` with a signal that fires at the probe's timeout or when the agent stops; a timeout is a failed reading. */
async function withDeadline(
  probe: ProbeConfig,
  ctx: CheckContext,
  check: (signal: AbortSignal) => Promise<ProbeReading>,
): Promise<ProbeReading> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), probe.timeout);
  const onStop = () => ctl.abort();
  ctx.signal.addEventListener('abort', onStop, { once: true });
  if (ctx.signal.aborted) ctl.abort();
  try {
    const reading = await check(ctl.signal);
    // A check that succeeded just as the deadline passed still counts; an aborted one reads as a timeout.
    return !reading.ok && ctl.signal.aborted
      ? { ok: false, value: null, error: timeoutError(probe), extra: emptyExtra(probe.type) }
      : reading;
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onStop);
  }
}

/** Latency is the time to the status line and headers; a body is read (up to 64 KiB) only to match `body`. */
async function checkHttp(probe: ProbeOf<'http'>, signal: AbortSignal): Promise<ProbeReading> {
  // url.host carries no credentials, so an error never shows a password given in the URL.
  const target = new URL(probe.url).host;
  const answer = await httpRequest({
    url: probe.url,
    method: probe.method,
    insecure: probe.insecure,
    headers: { 'user-agent': `homelab-cmd/${VERSION}`, accept: '*/*' },
    maxBody: probe.body === undefined ? 0 : MAX_BODY,
    signal,
  });
  if (answer.kind === 'aborted') return { ok: false, value: null, error: '', extra: { status_code: null } };
  if (answer.kind === 'error')
    return {
      ok: false,
      value: null,
      error: networkError(answer.code, answer.message, target),
      extra: { status_code: null },
    };
  const { status: code, latencyMs: latency } = answer;
  const extra = { status_code: code };
  if (!statusAccepted(probe.status, code))
    return {
      ok: false,
      value: latency,
      error: `status ${code}, expected ${describeStatus(probe.status)}`,
      extra,
    };
  const body = answer.body.subarray(0, MAX_BODY).toString('utf8');
  if (probe.body !== undefined && !new RegExp(probe.body, 'u').test(body))
    return {
      ok: false,
      value: latency,
      error: `the body does not match ${JSON.stringify(probe.body)} (first ${MAX_BODY / 1024} KiB searched)`,
      extra,
    };
  return { ok: true, value: latency, error: null, extra };
}

/** Latency is the time until the TCP handshake completes; the connection is closed at once. */
function checkTcp(probe: ProbeOf<'tcp'>, signal: AbortSignal): Promise<ProbeReading> {
  const target = net.isIPv6(probe.host) ? `[${probe.host}]:${probe.port}` : `${probe.host}:${probe.port}`;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: probe.host, port: probe.port });
    const finish = (reading: ProbeReading) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(reading);
    };
    const onAbort = () => finish({ ok: false, value: null, error: '' });
    socket.once('connect', () =>
      finish({ ok: true, value: Math.round(performance.now() - t0), error: null }),
    );
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, value: null, error: networkError(err.code, err.message, target) }),
    );
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function checkPing(probe: ProbeOf<'ping'>, ctx: CheckContext): Promise<ProbeReading> {
  // ping's own deadline (-w) ends it first and it prints its summary; the runner kills it a second later.
  const run = await runCommand({
    argv: pingArgv(probe),
    env: childEnv({ env: {} }, ctx.path),
    timeoutMs: probe.timeout + 1000,
    maxOutput: MAX_OUTPUT,
    killGraceMs: KILL_GRACE_MS,
    signal: ctx.signal,
  });
  const none = { ok: false, value: null, extra: { loss_percent: null } };
  switch (run.kind) {
    case 'not_found':
      return {
        ...none,
        error: `ping was not found on execution.path (${ctx.path}) — install it (iputils-ping)`,
      };
    case 'spawn_failed':
      return { ...none, error: `ping could not be started: ${run.error ?? 'unknown error'}` };
    case 'timed_out':
      return {
        ...none,
        error: `ping did not end within ${formatDuration(probe.timeout + 1000)} and was killed`,
      };
    case 'interrupted':
      return { ...none, error: 'interrupted' };
    case 'exited':
      return pingReading(probe, run.exitCode, run.stdout.text, run.stderr.text);
  }
}

async function checkService(probe: ProbeOf<'service'>, ctx: CheckContext): Promise<ProbeReading> {
  const run = await runCommand({
    argv: serviceArgv(probe),
    env: childEnv({ env: {} }, ctx.path),
    timeoutMs: probe.timeout,
    maxOutput: MAX_OUTPUT,
    killGraceMs: KILL_GRACE_MS,
    signal: ctx.signal,
  });
  switch (run.kind) {
    case 'not_found':
      return {
        ok: false,
        value: null,
        error: `systemctl was not found on execution.path (${ctx.path}) — the service probe needs systemd`,
      };
    case 'spawn_failed':
      return {
        ok: false,
        value: null,
        error: `systemctl could not be started: ${run.error ?? 'unknown error'}`,
      };
    case 'timed_out':
      return { ok: false, value: null, error: timeoutError(probe) };
    case 'interrupted':
      return { ok: false, value: null, error: 'interrupted' };
    case 'exited': {
      // The state word: active, inactive, failed, activating, deactivating, reloading or unknown.
      const word = firstLine(run.stdout.text).slice(0, 32);
      if (run.exitCode === 0) return { ok: true, value: word || 'active', error: null };
      const why = word
        ? `${probe.unit} is ${word}`
        : firstLine(run.stderr.text) || `systemctl exited with code ${run.exitCode}`;
      return { ok: false, value: word || null, error: why };
    }
  }
}

async function checkDisk(probe: ProbeOf<'disk'>): Promise<ProbeReading> {
  const none = { ok: false, value: null, extra: { used_bytes: null, free_bytes: null, total_bytes: null } };
  try {
    return diskReading(probe, await statfs(probe.path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return { ...none, error: `${probe.path} does not exist — create it or fix the probe's path` };
    if (code === 'EACCES') return { ...none, error: `${probe.path} is not accessible to the agent's user` };
    return { ...none, error: `${probe.path}: ${(err as Error).message}` };
  }
}

/** Counts processes by `/proc/<pid>/comm`, or argv[0]'s base name; the agent's own process counts too. */
async function checkProcess(probe: ProbeOf<'process'>, signal: AbortSignal): Promise<ProbeReading> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e));
  } catch {
    return { ok: false, value: null, error: '/proc cannot be read — the process probe needs Linux' };
  }
  let count = 0;
  // In slices, so a host with thousands of processes does not open thousands of files at once.
  for (let i = 0; i < pids.length && !signal.aborted; i += 64) {
    const found = await Promise.all(pids.slice(i, i + 64).map((pid) => isMatch(pid, probe.process)));
    count += found.filter(Boolean).length;
  }
  return count > 0
    ? { ok: true, value: count, error: null }
    : { ok: false, value: 0, error: `no process named ${JSON.stringify(probe.process)} is running` };
}

async function isMatch(pid: string, wanted: string): Promise<boolean> {
  try {
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8');
    if (processMatches(wanted, comm, '')) return true;
    return processMatches(wanted, '', await readFile(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    // The process ended between readdir and the read.
    return false;
  }
}
