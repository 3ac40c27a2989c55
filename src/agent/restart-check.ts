/**
 * What a start does before it calls an id `interrupted` (docs/operations.md § After a crash):
 * it reads the broker's retained per-id result first — a final published while the journal could not
 * record it (a full state_dir) is adopted, never contradicted — and it stops what is left of the
 * command's process group, so `interrupted` means stopped. Also the journal's reply targets, checked
 * again as the hostile input a file in state_dir is.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { checkReplyTo, type ReplyTo } from '../core/reply.js';
import { isFinal, type Result } from '../core/result.js';
import type { StoredProcess, StoredReply } from './journal.js';

/** How long a start waits for the broker's retained results of its unfinished ids. */
export const RETAINED_WAIT_MS = 3000;
/** How long the killed group gets to be gone from /proc. */
const STOP_WAIT_MS = 5000;

/** The retained message on each topic (an empty one counts as none); `ms` bounds the wait. */
export type ReadRetained = (topics: string[], ms: number) => Promise<Map<string, Buffer>>;

export function storedReply(replyTo: ReplyTo | undefined): StoredReply | undefined {
  if (!replyTo) return undefined;
  const r: StoredReply = { topic: replyTo.responseTopic };
  if (replyTo.correlationData) r.correlation = replyTo.correlationData.toString('base64');
  return r;
}

/** A journaled reply target, checked as when it came (only under our own P/H/reply/, bounded). */
export function replyFromJournal(stored: StoredReply | undefined, replyBase: string): ReplyTo | undefined {
  if (!stored) return undefined;
  const cd = stored.correlation === undefined ? undefined : Buffer.from(stored.correlation, 'base64');
  const checked = checkReplyTo(stored.topic, cd, replyBase);
  return checked.ok ? checked.replyTo : undefined;
}

/**
 * The final results the broker holds for `ids` on `P/H/result/ID`: only a final whose host and id are
 * this host's and this id's (the ACL lets only this agent write there; docs/security.md).
 */
export async function retainedFinals(
  ids: string[],
  host: string,
  topicOf: (id: string) => string,
  read: ReadRetained,
): Promise<Map<string, Result>> {
  const found = new Map<string, Result>();
  if (ids.length === 0) return found;
  let got: Map<string, Buffer>;
  try {
    got = await read(
      ids.map((id) => topicOf(id)),
      RETAINED_WAIT_MS,
    );
  } catch {
    // The connection went meanwhile: nothing learned, the ids are reported as the journal has them.
    return found;
  }
  for (const id of ids) {
    const payload = got.get(topicOf(id));
    if (!payload || payload.length === 0) continue;
    try {
      const r = JSON.parse(payload.toString('utf8')) as Result;
      // Not a rejection: one can be left there from before the id was accepted (rejections are not
      // journaled, so the same id may be sent again), and it says nothing about the run.
      if (
        r?.id === id &&
        r.host === host &&
        typeof r.status === 'string' &&
        isFinal(r.status) &&
        r.status !== 'rejected'
      )
        found.set(id, r);
    } catch {
      // Not a result of ours: the id is reported interrupted as before.
    }
  }
  return found;
}

/** The start time of `pid` (/proc/PID/stat field 22), undefined when it is gone. */
export function processStart(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Fields 3… of /proc/PID/stat (state first): the command name in parentheses may hold spaces. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Live members of process group `pgid`; a zombie is dead (nothing reaps it where PID 1 does not). */
function members(pgid: number): number[] {
  const live: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && f[2] === String(pgid) && f[0] !== 'Z' && f[0] !== 'X') live.push(Number(name));
  }
  return live;
}

/**
 * Stops what is left of a command's process group; what happened, for the `interrupted` result's error.
 * Only a group whose leader still has the recorded start time is killed: a reused pid is someone else's.
 */
export async function stopLeftovers(proc: StoredProcess | undefined, started = false): Promise<string> {
  // Started but no group recorded: the agent died between the spawn and the record of its process group
  // (docs/operations.md § After a crash) — that group cannot be found, so this says so instead of "none".
  if (!proc)
    return started
      ? 'it was being started when the agent died, before its process group was recorded, so nothing of it could be found to stop — it may still be running: check the host'
      : 'no process of it had been started';
  const left = processStart(proc.pgid) === proc.start ? members(proc.pgid) : [];
  if (left.length === 0) return `none of its processes (process group ${proc.pgid}) was left`;
  // A journal naming the agent's own group (a hostile or broken state_dir) never kills the agent.
  if (left.includes(process.pid))
    return `process group ${proc.pgid} is the agent's own; nothing was stopped — check the host by hand`;
  try {
    process.kill(-proc.pgid, 'SIGKILL');
  } catch (err) {
    return `what was left of it (process group ${proc.pgid}) could not be stopped (${(err as NodeJS.ErrnoException).code ?? String(err)}) and may still be running — stop it by hand`;
  }
  const deadline = Date.now() + STOP_WAIT_MS;
  while (members(proc.pgid).length > 0) {
    if (Date.now() > deadline)
      return `what was left of it (process group ${proc.pgid}) was killed but is still in /proc — check it by hand`;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return `what was left of it (process group ${proc.pgid}) was stopped at restart`;
}
