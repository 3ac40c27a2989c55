/** `homelab-cmd status`: a table of hosts from retained status, heartbeats and last results. */
import { hostTopics } from '../core/topics.js';
import { connectFirst, refusal } from './client.js';
import { emptyGroup, formatIgnored, formatMembers, readFleet, resolveMembers } from './fleet-members.js';
import { UsageError } from '../errors.js';
import { ACTION_NAME_RE } from '../core/names.js';
import { err } from './args.js';
import { out, parse, secondsOption, untilSignal, type Verb } from './args.js';
import { targetFrom, targetOptions, type Target } from './send.js';
import { actionRows, formatActionsTable } from './status-actions.js';
import { MAX_CELL, applyMessage, printable, type HostRow } from './status-rows.js';

export type { HostRow } from './status-rows.js';

// Retained messages arrive right after SUBACK; this long without one means we have them all.
const QUIET_MS = 300;
const MAX_MS = 3000;

export const statusVerb: Verb = {
  name: 'status',
  usage: `Usage: homelab-cmd status [--url U] [--prefix P] [--config F] [--actions] [--json] [--watch [--interval S]]
                          [--group G]

Reads the retained P/+/status, P/+/heartbeat and P/+/result messages and prints
one row per host: online/offline, heartbeat age, load, memory, disk, running
commands and the last result. --actions prints one row per host and action
instead: runs (count), succeeded, failed, timed out, rejected, p50 and p95
duration of the last 100 runs, and the last status. --json prints the rows for
scripts (with --actions: one object per host and action); --watch keeps the
table current, redrawn every --interval seconds (default 2), until Ctrl-C.
--url may be repeated: the first broker that answers is read. --url and --prefix
default as for send: --config, else the homelab-cmd up you are running, else
mqtt://127.0.0.1:1883 and homelab. --group G lists the members of group G (from
the groups the agents publish) with online/offline, and names those not online
(docs/fleet.md).`,
  async run(argv) {
    const { values } = parse(this, argv, {
      ...targetOptions,
      actions: { type: 'boolean' },
      json: { type: 'boolean' },
      watch: { type: 'boolean', short: 'w' },
      interval: { type: 'string' },
      group: { type: 'string', short: 'g' },
    });
    if (values.help) return (out(this.usage), 0);
    const target = targetFrom(values);
    if (values.group !== undefined) return groupStatus(target, values.group, values.json === true);
    const { client, url } = await connectFirst(target);
    const rows = new Map<string, HostRow>();
    let refused: unknown;
    let quiet: NodeJS.Timeout | undefined;
    let cap: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve) => {
      // Nothing is printed before the broker answered every SUBSCRIBE (or they timed out, client.ts
      // boundAnswers): a broker that never answers is an error, not "no hosts found".
      const leaves = ['status', 'heartbeat', 'result'] as const;
      let answered = 0;
      const finish = () => {
        if (answered === leaves.length) resolve();
      };
      const bump = () => {
        clearTimeout(quiet);
        quiet = setTimeout(finish, QUIET_MS);
      };
      const settled = () => {
        if (++answered === leaves.length) cap = setTimeout(resolve, MAX_MS);
        bump();
      };
      client.on('message', (topic, payload) => {
        bump();
        // Another host's message, hostile until checked: a bad one becomes its row's error (status-rows.ts).
        applyMessage(rows, target.prefix, topic, payload);
      });
      const every = hostTopics(target.prefix, '+');
      for (const leaf of leaves)
        void client.subscribeAsync(every[leaf], { qos: 0 }).then(settled, (e: unknown) => {
          refused ??= e;
          settled();
        });
    });
    await done;
    // A timer left running holds the process: every `status` would end only when the cap ran out (3 s).
    clearTimeout(quiet);
    clearTimeout(cap);
    if (refused !== undefined) {
      await client.endAsync();
      throw refusal(refused, url, `read ${target.prefix}/+/status, heartbeat and result`);
    }
    const render = () => {
      const list = [...rows.values()].sort((a, b) => a.host.localeCompare(b.host));
      if (values.json) return JSON.stringify(values.actions ? actionRows(list) : list, null, 2);
      if (list.length === 0) return `no hosts found under ${target.prefix}/ on ${url}`;
      return values.actions ? formatActionsTable(list, new Date()) : formatTable(list, new Date());
    };
    if (!values.watch) {
      await client.endAsync();
      out(render());
      return 0;
    }
    // --watch: the subscription stays open and keeps the rows current; redraw every interval until Ctrl-C.
    const every = (secondsOption('interval', values.interval) ?? 2) * 1000;
    // Clear the screen only on a terminal: piped, each refresh is a block after a blank line, no escapes.
    const draw = () => out(process.stdout.isTTY ? `\x1b[H\x1b[2J${render()}` : `${render()}\n`);
    draw();
    const timer = setInterval(draw, every);
    await untilSignal();
    clearInterval(timer);
    await client.endAsync();
    return 0;
  },
};

/** Plain text; every cell another host wrote is made printable (status-rows.ts). */
export function formatTable(rows: HostRow[], now: Date): string {
  const problems = rows.some((r) => r.errors);
  const header = ['HOST', 'STATUS', 'HEARTBEAT', 'LOAD', 'MEM', 'DISK', 'RUNNING', 'LAST RESULT'];
  if (problems) header.push('PROBLEM');
  const body = rows.map((r) => {
    const hb = r.heartbeat;
    const age = hb ? `${Math.max(0, Math.round((now.getTime() - Date.parse(hb.ts)) / 1000))}s ago` : '-';
    const pct = (u?: { used: number; total: number }) =>
      u && u.total > 0 ? `${Math.round((u.used / u.total) * 100)}%` : '-';
    const last = r.last
      ? `${r.last.action ?? '?'} ${r.last.status} ${r.last.completed_at ?? ''}`.trim()
      : '-';
    const cells = [
      r.host,
      r.status,
      age,
      hb ? hb.load.map((n) => n.toFixed(2)).join(' ') : '-',
      pct(hb?.memory),
      pct(hb?.disk),
      hb ? String(hb.running) : '-',
      last,
    ];
    if (problems) cells.push(r.errors?.join('; ') ?? '');
    return cells.map((c, i) => printable(c, i === cells.length - 1 ? 2 * MAX_CELL : MAX_CELL));
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  return [header, ...body]
    .map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

/** `status --group G`: the members of G with their state, from what is retained (docs/fleet.md § Groups). */
async function groupStatus(target: Target, group: string, json: boolean): Promise<number> {
  if (!ACTION_NAME_RE.test(group))
    throw new UsageError(`--group "${group}" is not a group name (${ACTION_NAME_RE.source})`);
  const { client, url } = await connectFirst(target);
  try {
    const view = await readFleet(client, target.prefix);
    const ignored = formatIgnored(view.ignored);
    if (ignored) err(ignored);
    const members = resolveMembers(view, { group });
    if (members.length === 0) throw emptyGroup(group, target.prefix, view);
    const down = members.filter((m) => m.status !== 'online').map((m) => m.host);
    out(
      json
        ? JSON.stringify({ group, hosts: members, not_online: down }, null, 2)
        : formatMembers(`group ${group}`, members),
    );
    return 0;
  } catch (e) {
    throw refusal(e, url, `read ${target.prefix}/_fleet/groups/+ and ${target.prefix}/+/status`);
  } finally {
    await client.endAsync();
  }
}
