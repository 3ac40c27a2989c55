/**
 * The audit log: one JSON line per request — who (as far as MQTT tells), what,
 * the decision and a summary of the result — in state_dir/audit.jsonl,
 * rotated by size (audit.jsonl.1 … .N).
 */
import { appendFileSync, existsSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import type { AuditLine } from '../core/formats.js';
import type { Result } from '../core/result.js';
import type { Logger } from '../log.js';

export interface AuditEntry {
  /** The topic the request came on. */
  topic: string;
  /** The account the broker authenticated, where it says (docs/security.md § Broker identities). */
  client: string | undefined;
  /** What the sender claims in its `client_id` user property: unproven. */
  claimed?: string | undefined;
  decision: 'accepted' | 'rejected' | 'repeat';
  result: Result;
}

export interface AuditOptions {
  enabled: boolean;
  max_size: number;
  keep: number;
}

export class AuditLog {
  private readonly file: string;
  private size = 0;

  constructor(
    dir: string,
    private readonly opts: AuditOptions,
    private readonly log: Logger,
  ) {
    this.file = path.join(dir, 'audit.jsonl');
  }

  /** Reads the current file's size, for rotation (the constructor does no I/O). */
  start(): void {
    this.size = existsSync(this.file) ? statSync(this.file).size : 0;
  }

  write(e: AuditEntry): void {
    if (!this.opts.enabled) return;
    const r = e.result;
    const entry: AuditLine = {
      ts: new Date().toISOString(),
      id: r.id,
      host: r.host,
      action: r.action,
      topic: e.topic,
      client: e.client ?? null,
      client_claimed: e.claimed ?? null,
      decision: e.decision,
      status: r.status,
      error_code: r.error_code ?? null,
      exit_code: r.exit_code,
      duration_ms: r.duration_ms ?? null,
    };
    const line = `${JSON.stringify(entry)}\n`;
    try {
      if (this.size + line.length > this.opts.max_size) this.rotate();
      appendFileSync(this.file, line, { mode: 0o600 });
      this.size += Buffer.byteLength(line);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not write the audit log');
    }
  }

  private rotate(): void {
    for (let i = this.opts.keep - 1; i >= 1; i--) {
      const from = `${this.file}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.file}.${i + 1}`);
    }
    if (existsSync(this.file)) renameSync(this.file, `${this.file}.1`);
    this.size = 0;
  }
}
