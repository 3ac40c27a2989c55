/**
 * The chaos run's moving parts (docs/operations.md § Chaos run): a broker that can be killed and
 * restarted (Mosquitto with persistence, or `homelab-cmd broker` with disk persistence), real agent
 * processes from dist/, and a fake `work` executable that logs `<id> start <pgid>` / `<id> end <pgid>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { MOSQUITTO, findBinary } from '../helpers/mosquitto.js';
import { testPath, writeConfig } from '../helpers/fixtures.js';
import { waitForPort } from '../helpers/net.js';
import { until, withDeadline } from '../helpers/wait.js';

/** mulberry32: a small seeded PRNG, so a failing schedule replays with CHAOS_SEED. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Broker {
  kind: 'mosquitto' | 'embedded';
  url: string;
  running(): boolean;
  start(): Promise<void>;
  stop(signal: NodeJS.Signals): Promise<void>;
}

function alive(p: ChildProcess | undefined): p is ChildProcess {
  return p !== undefined && p.exitCode === null && p.signalCode === null;
}

async function signalAndWait(p: ChildProcess | undefined, signal: NodeJS.Signals, what: string) {
  if (!alive(p)) return;
  const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill(signal);
  await withDeadline(gone, 20_000, `${what} to exit on ${signal}`).catch(async () => {
    p.kill('SIGKILL');
    await gone;
  });
}

/** Mosquitto with persistence in its own temp dir, saved after every change (autosave_on_changes). */
export function mosquittoBroker(dir: string, port: number): Broker {
  if (!MOSQUITTO && !findBinary('mosquitto')) throw new Error('mosquitto is not installed');
  const conf = path.join(dir, 'mosquitto.conf');
  mkdirSync(path.join(dir, 'mosq-data'), { recursive: true });
  // Mosquitto started as root drops to its own user: without these it cannot write its database, and
  // persistence fails silently (every restart then starts empty).
  chmodSync(dir, 0o755);
  chmodSync(path.join(dir, 'mosq-data'), 0o777);
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${path.join(dir, 'mosq-data')}/`,
      'autosave_interval 1',
      'autosave_on_changes true',
      'max_queued_messages 100000',
      'log_dest none',
      '',
    ].join('\n'),
  );
  let proc: ChildProcess | undefined;
  return {
    kind: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    running: () => alive(proc),
    async start() {
      const p = spawn(MOSQUITTO!, ['-c', conf], { stdio: 'ignore' });
      proc = p;
      const exited = new Promise<never>((_, reject) =>
        p.once('exit', (code) => reject(new Error(`mosquitto exited (${code}) at start`))),
      );
      exited.catch(() => undefined);
      await Promise.race([waitForPort(port, 120_000), exited]);
    },
    stop: (signal) => signalAndWait(proc, signal, 'mosquitto'),
  };
}

/** `homelab-cmd broker` as its own process, sessions and queued messages on disk (the default). */
export function embeddedBroker(dir: string, port: number): Broker {
  const file = writeConfig(dir, { host: 'chaos-broker', state_dir: `${dir}/broker-state` }, 'broker.yaml');
  let p: AgentProcess | undefined;
  return {
    kind: 'embedded',
    url: `mqtt://127.0.0.1:${port}`,
    running: () => alive(p?.proc),
    async start() {
      const started = spawnCli(['broker', '--config', file, '--port', String(port)]);
      p = started;
      await Promise.race([
        until(
          () => started.output().includes('embedded broker listening on'),
          120_000,
          'the broker to listen',
        ),
        started.exited.then(({ code }) => {
          throw new Error(`the broker exited (${code}) before listening:\n${started.output()}`);
        }),
      ]);
    },
    stop: (signal) => signalAndWait(p?.proc, signal, 'the embedded broker'),
  };
}

/** The fake command: `work <id> <seconds>`, its process group id logged with each line. */
export function workBin(dir: string): { bin: string; log: string } {
  const bin = path.join(dir, 'bin');
  const log = path.join(dir, 'work.log');
  mkdirSync(bin, { recursive: true });
  const file = path.join(bin, 'work');
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      `pg=$(cut -d' ' -f5 /proc/$$/stat)`,
      `echo "$1 start $pg" >> "${log}"`,
      'sleep "$2"',
      `echo "$1 end $pg" >> "${log}"`,
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o755);
  return { bin, log };
}

export interface LogLine {
  id: string;
  what: 'start' | 'end';
  pgid: number;
}

export function readLog(log: string): LogLine[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [id, what, pgid] = l.split(' ');
      return { id: id!, what: what as 'start' | 'end', pgid: Number(pgid) };
    });
}

/** Live (not zombie) processes of a process group, from /proc. */
export function livePgroup(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // After the command name in parentheses: state, ppid, pgrp, …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] !== 'Z' && Number(fields[2]) === pgid) out.push(Number(name));
  }
  return out;
}

export class ChaosAgent {
  proc: AgentProcess | undefined;
  readonly file: string;

  constructor(
    readonly host: string,
    dir: string,
    url: string,
    bin: string,
  ) {
    const home = path.join(dir, host);
    mkdirSync(home, { recursive: true });
    this.file = writeConfig(home, {
      host,
      state_dir: `${home}/state`,
      mqtt: { url, keepalive: '2s' },
      heartbeat: { interval: '1h' },
      discovery: { enabled: false },
      execution: {
        enabled: true,
        run_as: false,
        path: testPath(bin),
        shutdown_grace: '1s',
        concurrency: 2,
        queue: 200,
        timeout: '20s',
      },
      actions: {
        work: {
          argv: ['work', '{tag}', '{secs}'],
          params: {
            tag: { type: 'string', pattern: '[A-Za-z0-9._:-]{1,64}' },
            secs: { type: 'enum', values: ['0', '1', '2', '3'] },
          },
        },
      },
    });
  }

  /** The output of every process this agent has been, in order (CHAOS_TRACE). */
  private readonly past: string[] = [];

  running(): boolean {
    return alive(this.proc?.proc);
  }

  start(): void {
    if (this.proc) this.past.push(this.proc.output());
    this.proc = spawnCli(['agent', '--config', this.file], {
      HOMELAB_CMD_LOG_LEVEL: process.env.CHAOS_TRACE === '1' ? 'info' : 'warn',
    });
  }

  logs(): string {
    return [...this.past, this.proc?.output() ?? ''].join('\n--- restart ---\n');
  }

  async stop(signal: NodeJS.Signals): Promise<void> {
    await signalAndWait(this.proc?.proc, signal, `agent ${this.host}`);
  }
}
