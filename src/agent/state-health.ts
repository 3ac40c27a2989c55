/**
 * Whether state_dir can be written: a full disk is a degraded mode, not a crash
 * (docs/operations.md § The state directory). While it cannot, the agent stays online, says so in
 * its heartbeat (`degraded`) and log, and refuses new requests `busy` — it cannot journal them,
 * so it cannot promise to run them only once. It recovers by itself: a probe write on each
 * heartbeat beat (and before each new request) ends the mode as soon as space returns.
 */
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';

/** One page: a probe that fits in the slack of a file's last page would say "writable" on a full disk. */
const PROBE_BYTES = 4096;
const SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

export class StateHealth {
  private failure: NodeJS.ErrnoException | undefined;
  private readonly probeFile: string;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    /** Called when the mode starts or ends, so the heartbeat can say so at once. */
    private readonly onChange: () => void = () => undefined,
  ) {
    this.probeFile = path.join(dir, `space-probe.tmp-${process.pid}`);
  }

  /** The heartbeat's `degraded` field: why new requests are refused; undefined when all is well. */
  get degraded(): string | undefined {
    const err = this.failure;
    if (!err) return undefined;
    const what = SPACE_CODES.has(err.code ?? '') ? 'full' : 'not writable';
    // Node's message starts with the code: "ENOSPC: no space left on device, write".
    return `state_dir ${what}: ${err.message} — refusing new requests until space returns`;
  }

  /** A write in state_dir failed: enter the degraded mode (once; later failures say nothing new). */
  failed(err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code !== 'string') return; // Not a file system error: nothing to say about the disk.
    const was = this.failure;
    this.failure = e;
    if (was) return;
    this.log.error(
      { dir: this.dir, code: e.code, err: e.message },
      `state_dir ${this.dir} is ${SPACE_CODES.has(e.code) ? 'full' : 'not writable'}: refusing new requests until space returns (free space there; no restart needed)`,
    );
    this.onChange();
  }

  /** Probes with one page written, synced and removed; ends (or starts) the degraded mode. */
  check(): boolean {
    let fd: number | undefined;
    try {
      fd = openSync(this.probeFile, 'w', 0o600);
      writeSync(fd, Buffer.alloc(PROBE_BYTES));
      fsyncSync(fd);
    } catch (err) {
      this.failed(err);
      return false;
    } finally {
      try {
        if (fd !== undefined) closeSync(fd);
        rmSync(this.probeFile, { force: true });
      } catch {
        // Best effort: the name is ours, and a leftover is removed at the next start.
      }
    }
    if (this.failure) {
      this.failure = undefined;
      this.log.info({ dir: this.dir }, `state_dir ${this.dir} is writable again: accepting requests`);
      this.onChange();
    }
    return true;
  }

  /** Before accepting a request: throws the failure while the probe still fails. */
  assertWritable(): void {
    if (this.failure && !this.check()) throw this.failure;
  }
}
