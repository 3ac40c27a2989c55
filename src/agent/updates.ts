/**
 * OS updates and the reboot flag (docs/updates.md): checks on `updates.check`,
 * at start and after every run of the install action, and keeps the states
 * retained on `P/H/updates` and `P/H/reboot_required`.
 *
 * - No shell, no root: `apt-mark showhold` and `apt-get -s` through the spawn
 *   layer, exec/spawn.ts (fixed argv, execution.path, a timeout that kills the group, capped output).
 * - The install itself is an ordinary action run by the pipeline; this module only
 *   watches it (Pipeline.observe) for in_progress and apt's progress lines.
 * - The update state is published only after a check succeeded once: before that HA
 *   shows "unknown" rather than a wrong "up to date"; a later failed check keeps the
 *   last good list and says why in `error`.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Config } from '../config/load.js';
import {
  APT_SHOWHOLD_ARGV,
  aptProgress,
  aptSimulateArgv,
  parseAptSimulation,
  parseHolds,
  parseRebootPackages,
  rebootState,
  updateState,
  type AptSimulation,
} from '../core/updates.js';
import { hostTopics, type HostTopics } from '../core/topics.js';
import { childEnv } from '../exec/steps.js';
import { runCommand, type RunOutcome } from '../exec/spawn.js';
import type { Logger } from '../log.js';
import type { JobObserver } from './pipeline.js';
import type { Publisher } from './publisher.js';
import type { AgentPart } from './part.js';

// apt-get -s on a host years behind lists thousands of lines; what we keep is bounded.
const MAX_OUTPUT = 2_000_000;
const MAX_PKGS_FILE = 64 * 1024;
const KILL_GRACE_MS = 2000;

export class Updates implements JobObserver, AgentPart {
  readonly name = 'os update checks';
  private readonly topics: HostTopics;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private stopped = false;
  /** The last good apt reading; undefined until a check succeeded. */
  private found: AptSimulation | undefined;
  private error: string | null = null;
  private checkedAt = new Date(0);
  /** Runs of the install action in flight: two presses may overlap (concurrency ≥ 2). */
  private installs = 0;
  private percentage: number | null = null;
  private partialLine = '';
  private latestUpdates: string | undefined;
  private latestReboot: string | undefined;

  constructor(
    private readonly config: Config,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
    private readonly connected: () => boolean,
  ) {
    this.topics = hostTopics(config.mqtt.prefix, config.host);
  }

  get enabled(): boolean {
    return this.config.updates.enabled;
  }

  start(): void {
    if (!this.enabled) return;
    this.schedule(0);
    this.log.info(
      { every_ms: this.config.updates.check, install_action: this.config.updates.install_action ?? null },
      'os update checks started',
    );
  }

  /** At every connect: the latest states, retained. */
  async onConnect(): Promise<void> {
    await this.publishAll();
  }

  async publishAll(): Promise<void> {
    if (this.latestUpdates !== undefined)
      await this.mqtt.publish(this.topics.updates, this.latestUpdates, { retain: true });
    if (this.latestReboot !== undefined)
      await this.mqtt.publish(this.topics.rebootRequired, this.latestReboot, { retain: true });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
    await this.checking?.catch(() => undefined);
  }

  // JobObserver: the pipeline tells us about every action; only the install action matters.
  started(action: string): void {
    if (!this.enabled || action !== this.config.updates.install_action) return;
    this.installs++;
    this.percentage = null;
    this.partialLine = '';
    this.publishUpdates();
  }

  output(action: string, chunk: Buffer): void {
    if (this.installs === 0 || action !== this.config.updates.install_action) return;
    const lines = (this.partialLine + chunk.toString('utf8')).split('\n');
    // A line cut across chunks waits for its end; an endless one is dropped, not kept.
    this.partialLine = (lines.pop() ?? '').slice(-1024);
    let pct: number | undefined;
    for (const l of lines) pct = aptProgress(l) ?? pct;
    if (pct !== undefined && pct !== this.percentage) {
      this.percentage = pct;
      this.publishUpdates();
    }
  }

  ended(action: string): void {
    if (this.installs === 0 || action !== this.config.updates.install_action) return;
    this.installs--;
    if (this.installs > 0) return;
    this.percentage = null;
    this.publishUpdates();
    // What is pending now, and whether the install asked for a reboot.
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delayMs);
  }

  private run(): void {
    if (this.stopped) return;
    // One check at a time; a check asked for meanwhile follows it.
    if (this.checking) {
      void this.checking.finally(() => this.schedule(0));
      return;
    }
    const task = this.check()
      .catch((err: unknown) => this.log.error({ err }, 'an os update check failed unexpectedly'))
      .finally(() => {
        this.checking = undefined;
        this.schedule(this.config.updates.check);
      });
    this.checking = task;
  }

  private async check(): Promise<void> {
    const checkedAt = new Date();
    const reboot = await this.readReboot();
    if (this.stopped) return;
    this.latestReboot = JSON.stringify(rebootState(reboot.required, reboot.packages, checkedAt));
    this.send(this.topics.rebootRequired, this.latestReboot);

    const reading = await this.readApt();
    if (this.stopped) return;
    this.checkedAt = checkedAt;
    if ('error' in reading) {
      if (this.error !== reading.error) this.log.warn({ error: reading.error }, 'checking os updates failed');
      this.error = reading.error;
    } else {
      if (this.error !== null) this.log.info('checking os updates works again');
      this.error = null;
      this.found = reading;
    }
    this.publishUpdates();
  }

  private publishUpdates(): void {
    if (!this.found) return;
    this.latestUpdates = JSON.stringify(
      updateState({
        manager: this.config.updates.manager,
        pending: this.found.pending,
        phased: this.found.phased,
        held: this.found.held,
        checkedAt: this.checkedAt,
        error: this.error,
        inProgress: this.installs > 0,
        percentage: this.percentage,
      }),
    );
    this.send(this.topics.updates, this.latestUpdates);
  }

  /** While disconnected the state waits for publishAll; the schedule never waits on the broker. */
  private send(topic: string, payload: string): void {
    if (!this.connected()) return;
    this.mqtt
      .publish(topic, payload, { retain: true })
      .catch((err: unknown) => this.log.warn({ err, topic }, 'could not publish an os update state'));
  }

  private async readReboot(): Promise<{ required: boolean; packages: string[] }> {
    const file = this.config.updates.reboot_required_file;
    try {
      await stat(file);
    } catch {
      return { required: false, packages: [] };
    }
    try {
      const text = (await readFile(`${file}.pkgs`)).subarray(0, MAX_PKGS_FILE).toString('utf8');
      return { required: true, packages: parseRebootPackages(text) };
    } catch {
      return { required: true, packages: [] };
    }
  }

  private async readApt(): Promise<AptSimulation | { error: string }> {
    const holds = await this.exec([...APT_SHOWHOLD_ARGV]);
    // Without apt-mark the holds are still left out by apt-get -s itself; this is a second guard.
    const held = holds.kind === 'exited' && holds.exitCode === 0 ? parseHolds(holds.stdout.text) : [];
    const argv = aptSimulateArgv(this.config.updates.mode);
    const run = await this.exec(argv);
    switch (run.kind) {
      case 'not_found':
        return {
          error: `apt-get was not found on execution.path (${this.config.execution.path}) — updates.manager apt needs a Debian-family host; set updates.enabled: false elsewhere`,
        };
      case 'spawn_failed':
        return { error: `apt-get could not be started: ${run.error ?? 'unknown error'}` };
      case 'timed_out':
        return {
          error: `apt-get -s took longer than updates.timeout (${this.config.updates.timeout} ms) — raise updates.timeout`,
        };
      case 'interrupted':
        return { error: 'interrupted' };
      case 'exited':
        if (run.exitCode !== 0) {
          const why = run.stderr.text.trim().split('\n').slice(-1)[0]?.slice(0, 200) ?? '';
          return { error: `${argv.join(' ')} exited with code ${run.exitCode}${why ? `: ${why}` : ''}` };
        }
        if (run.stdout.truncated)
          return { error: `${argv.join(' ')} printed more than ${MAX_OUTPUT} bytes; not read` };
        return parseAptSimulation(run.stdout.text, held);
    }
  }

  private exec(argv: string[]): Promise<RunOutcome> {
    return runCommand({
      argv,
      // LC_ALL=C: the "deferred due to phasing" header is translated in other locales.
      env: childEnv({ env: { LC_ALL: 'C' } }, this.config.execution.path),
      timeoutMs: this.config.updates.timeout,
      maxOutput: MAX_OUTPUT,
      killGraceMs: KILL_GRACE_MS,
      signal: this.abort.signal,
      rootCwd: true,
    });
  }
}
