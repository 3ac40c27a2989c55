/**
 * What a line of the id journal holds besides a result, and the checks it passes when read back: a
 * journal line is a file in state_dir, so hostile (docs/security.md).
 */
import type { Result } from '../core/result.js';

/** What is needed to run an accepted request later (a scheduled run, after a restart). */
export interface StoredRequest {
  action: string;
  params: Record<string, string>;
  timeoutMs: number | undefined;
  acceptedAt: number;
}

/**
 * Where the request asked for its answer (MQTT 5 response topic, correlation data as base64): every
 * final, after a restart too, goes there. Hostile when read back: checked again (core/reply.ts).
 */
export interface StoredReply {
  topic: string;
  correlation?: string;
}

/** The command's process group as spawned: what a restart stops of it (restart-check.ts). */
export interface StoredProcess {
  pgid: number;
  /** The leader's start time (/proc/PID/stat field 22): a reused pid never matches it. */
  start: string;
}

export interface JournalEntry {
  id: string;
  result: Result;
  request?: StoredRequest;
  reply?: StoredReply;
  proc?: StoredProcess;
}

/** What a record may carry besides its result: see StoredReply and StoredProcess. */
export interface Notes {
  reply?: StoredReply | undefined;
  proc?: StoredProcess | undefined;
}

export function isStoredReply(v: unknown): v is StoredReply {
  const r = v as StoredReply | undefined;
  return (
    typeof r?.topic === 'string' &&
    r.topic.length <= 1024 &&
    (r.correlation === undefined || (typeof r.correlation === 'string' && r.correlation.length <= 1024))
  );
}

export function isStoredProcess(v: unknown): v is StoredProcess {
  const p = v as StoredProcess | undefined;
  return (
    typeof p?.pgid === 'number' &&
    Number.isSafeInteger(p.pgid) &&
    p.pgid > 1 &&
    typeof p.start === 'string' &&
    /^\d{1,20}$/.test(p.start)
  );
}
