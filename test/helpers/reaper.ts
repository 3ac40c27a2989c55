/**
 * Children a test file started are killed when its worker exits. A test that hits its deadline stops
 * being awaited, so its `finally` may never run: without this, an agent, an `up` or a Mosquitto it
 * started outlives the run (seen on a busy machine: `up` and mosquitto still running 20 minutes later).
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let armed = false;

/** Registers a child; it leaves the set when it exits. Returns it. */
export function reaped<T extends ChildProcess>(proc: T): T {
  if (!armed) {
    armed = true;
    const killAll = () => {
      for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    };
    // 'exit' handlers run synchronously: kill() is, too.
    process.once('exit', killAll);
    // Vitest ends a worker with SIGTERM, which skips 'exit': kill them, then let the signal end it as before.
    process.once('SIGTERM', () => {
      killAll();
      process.kill(process.pid, 'SIGTERM');
    });
  }
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}
