/** `homelab-cmd status`: a table of hosts from retained status, heartbeats and last results. */
import type { Heartbeat } from '../agent/heartbeat.js';
import type { Result } from '../core/result.js';
import { hostOfTopic } from '../core/topics.js';
import { connectFirst, refusal } from './client.js';
import { out, parse, secondsOption, untilSignal, type Verb } from './args.js';
import { targetFrom, targetOptions } from './send.js';
import { actionRows, formatActionsTable } from './status-actions.js';

export interface HostRow {
  host: string;
  status: string;
  heartbeat?: Heartbeat;
  last?: Result;
}

// Retained messages arrive right after SUBACK; this long without one means we have them all.
const QUIET_MS = 300;
const MAX_MS = 3000;

export const statusVerb: Verb = {
  name: 'status',
  usage: `Usage: homelab-cmd status [--url U] [--prefix P] [--config F] [--actions] [--json] [--watch [--interval S]]

Reads the retained P/+/status, P/+/heartbeat and P/+/result messages and prints
one row per host: online/offline, heartbeat age, load, memory, disk, running
commands and the last result. --actions prints one row per host and action
instead: runs (count), succeeded, failed, timed out, rejected, p50 and p95
duration of the last 100 runs, and the last status. --json prints the rows for
scripts (with --actions: one object per host and action); --watch keeps the
table current, redrawn every --interval seconds (default 2), until Ctrl-C.
--url may be repeated: the first broker that answers is read. --url and --prefix
default as for send: --config, else the homelab-cmd up you are running, else
mqtt://127.0.0.1:1883 and homelab.`,
  async run(argv) {
    const { values } = parse(this, argv, {
      ...targetOptions,
      actions: { type: 'boolean' },
      json: { type: 'boolean' },
      watch: { type: 'boolean', short: 'w' },
      interval: { type: 'string' },
    });
    if (values.help) return (out(this.usage), 0);
    const target = targetFrom(values);
    const { client, url } = await connectFirst(target);
    const rows = new Map<string, HostRow>();
    let refused: unknown;
    const row = (host: string) => rows.get(host) ?? rows.set(host, { host, status: 'unknown' }).get(host)!;
    let quiet: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve) => {
      const bump = () => {
        clearTimeout(quiet);
        quiet = setTimeout(resolve, QUIET_MS);
      };
      setTimeout(resolve, MAX_MS);
      client.on('message', (topic, payload) => {
        bump();
        const text = payload.toString();
        const p = target.prefix;
        let host: string | undefined;
        try {
          if ((host = hostOfTopic(p, topic, 'status'))) row(host).status = text;
          else if ((host = hostOfTopic(p, topic, 'heartbeat')) && text)
            row(host).heartbeat = JSON.parse(text) as Heartbeat;
          else if ((host = hostOfTopic(p, topic, 'result')) && text)
            row(host).last = JSON.parse(text) as Result;
        } catch {
          // A malformed retained message from someone else is skipped, not fatal.
        }
      });
      for (const leaf of ['status', 'heartbeat', 'result'])
        void client.subscribeAsync(`${target.prefix}/+/${leaf}`, { qos: 0 }).then(bump, (e: unknown) => {
          refused ??= e;
          bump();
        });
    });
    await done;
    clearTimeout(quiet);
    if (refused !== undefined) {
      await client.endAsync();
      throw refusal(refused, url, `read ${target.prefix}/+/status, heartbeat and result`);
    }
    const render = () => {
      const list = [...rows.values()]
        .filter((r) => r.host !== '_fleet')
        .sort((a, b) => a.host.localeCompare(b.host));
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

export function formatTable(rows: HostRow[], now: Date): string {
  const header = ['HOST', 'STATUS', 'HEARTBEAT', 'LOAD', 'MEM', 'DISK', 'RUNNING', 'LAST RESULT'];
  const body = rows.map((r) => {
    const hb = r.heartbeat;
    const age = hb ? `${Math.max(0, Math.round((now.getTime() - Date.parse(hb.ts)) / 1000))}s ago` : '-';
    const pct = (u?: { used: number; total: number }) =>
      u && u.total > 0 ? `${Math.round((u.used / u.total) * 100)}%` : '-';
    const last = r.last
      ? `${r.last.action ?? '?'} ${r.last.status} ${r.last.completed_at ?? ''}`.trim()
      : '-';
    return [
      r.host,
      r.status,
      age,
      hb ? hb.load.map((n) => n.toFixed(2)).join(' ') : '-',
      pct(hb?.memory),
      pct(hb?.disk),
      hb ? String(hb.running) : '-',
      last,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  return [header, ...body]
    .map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}
