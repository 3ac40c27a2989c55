/**
 * Every process below a pid, found through the parent links in /proc —
 * including those that left its process group with setsid, which a group kill
 * misses. A process whose parent already died is re-parented and out of
 * reach: the PID namespace or systemd scope around a command covers that
 * (docs/security.md § Limits).
 */
import { readdirSync, readFileSync } from 'node:fs';

export function descendantsOf(root: number, proc = '/proc'): number[] {
  const children = new Map<number, number[]>();
  let names: string[];
  try {
    names = readdirSync(proc);
  } catch {
    return [];
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = parentOf(`${proc}/${name}/stat`);
    if (ppid === undefined) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const c of children.get(pid) ?? []) {
      if (c === root || out.includes(c)) continue;
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** The ppid field of /proc/PID/stat: after the last ")", since the command name may hold spaces and parentheses. */
function parentOf(statFile: string): number | undefined {
  try {
    const text = readFileSync(statFile, 'utf8');
    const ppid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}
