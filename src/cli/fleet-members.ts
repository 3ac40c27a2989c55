/**
 * Who is in a group, and who is online: read from what the agents retained — `P/_fleet/groups/H`
 * and `P/H/status` (docs/fleet.md § Groups). Every record is another host's and hostile until
 * checked (src/core/groups.ts); a bad one is skipped and said on stderr, never fatal.
 */
import type { MqttClient } from 'mqtt';
import { groupsFilter, parseGroupsTopic } from '../core/fleet-topics.js';
import { readGroupsRecord } from '../core/groups.js';
import { hostOfTopic } from '../core/topics.js';
import { UsageError } from '../errors.js';
import { printable } from './status-rows.js';

export interface FleetView {
  /** Host → its declared groups (valid records only). */
  groups: Map<string, string[]>;
  /** Host → `online`, `offline`, or `unknown` for anything else it retained. */
  status: Map<string, 'online' | 'offline' | 'unknown'>;
  /** Records not counted, and why (printable). */
  ignored: string[];
}

export interface Member {
  host: string;
  /** `missing`: no retained status at all (never connected to this broker, or a typo). */
  status: 'online' | 'offline' | 'unknown' | 'missing';
}

// Retained messages follow the SUBACK; this long with none new means they are all in (as status does).
const QUIET_MS = 300;
const MAX_MS = 10_000;

/** Subscribes, collects the retained records until the broker goes quiet, unsubscribes. */
export async function readFleet(client: MqttClient, prefix: string): Promise<FleetView> {
  const view: FleetView = { groups: new Map(), status: new Map(), ignored: [] };
  const filters = [groupsFilter(prefix), `${prefix}/+/status`];
  let quiet: NodeJS.Timeout | undefined;
  let max: NodeJS.Timeout | undefined;
  let bump = () => undefined as void;
  const onMessage = (topic: string, payload: Buffer) => {
    bump();
    const owner = parseGroupsTopic(prefix, topic);
    if (owner !== undefined) {
      const read = readGroupsRecord(owner, payload);
      if (read.ok) view.groups.set(owner, read.record.groups);
      else {
        view.groups.delete(owner);
        if (!read.cleared) view.ignored.push(`${topic}: ${read.problem}`);
      }
      return;
    }
    const host = hostOfTopic(prefix, topic, 'status');
    if (host === undefined) return;
    const text = payload.length <= 16 ? payload.toString('utf8') : '';
    view.status.set(host, text === 'online' || text === 'offline' ? text : 'unknown');
  };
  client.on('message', onMessage);
  try {
    await new Promise<void>((resolve, reject) => {
      bump = () => {
        clearTimeout(quiet);
        quiet = setTimeout(resolve, QUIET_MS);
      };
      max = setTimeout(resolve, MAX_MS);
      client.subscribeAsync(filters, { qos: 0 }).then(bump, reject);
    });
  } finally {
    clearTimeout(quiet);
    clearTimeout(max);
    client.removeListener('message', onMessage);
  }
  await client.unsubscribeAsync(filters);
  return view;
}

/** The members of group G (sorted), or the hosts named (in the order given, each once), with their state. */
export function resolveMembers(view: FleetView, target: { group: string } | { hosts: string[] }): Member[] {
  const hosts =
    'group' in target
      ? [...view.groups]
          .filter(([, g]) => g.includes(target.group))
          .map(([h]) => h)
          .sort()
      : [...new Set(target.hosts)];
  return hosts.map((host) => ({ host, status: view.status.get(host) ?? 'missing' }));
}

/** The same error for `status --group` and `send --group`: nobody declared it. */
export function emptyGroup(group: string, prefix: string, view: FleetView): UsageError {
  const known = [...new Set([...view.groups.values()].flat())].sort();
  return new UsageError(
    `no host declares group "${group}" under ${prefix}/_fleet/groups/ — add it to groups: in the agents' configs (docs/fleet.md)${known.length > 0 ? `; groups seen: ${known.slice(0, 20).join(', ')}` : '; no agent has published any group yet'}`,
  );
}

/** One line per host, then who is not online: what `--check` and `status --group` print. */
export function formatMembers(title: string, members: readonly Member[]): string {
  const width = Math.max(4, ...members.map((m) => m.host.length));
  const down = members.filter((m) => m.status !== 'online');
  const lines = [
    `${title}: ${members.length} host(s), ${members.length - down.length} online, ${down.length} not online`,
    `${'HOST'.padEnd(width)}  STATUS`,
    ...members.map(
      (m) => `${m.host.padEnd(width)}  ${m.status === 'missing' ? 'unknown (no retained status)' : m.status}`,
    ),
  ];
  if (down.length > 0) lines.push(`not online: ${down.map((m) => m.host).join(', ')}`);
  return lines.join('\n');
}

/** Ignored records, for stderr; capped so a flood of bad records cannot flood the terminal. */
export function formatIgnored(ignored: readonly string[]): string | undefined {
  if (ignored.length === 0) return undefined;
  const shown = ignored.slice(0, 10).map((i) => `  ignored ${printable(i, 200)}`);
  if (ignored.length > 10) shown.push(`  … and ${ignored.length - 10} more`);
  return `homelab-cmd: some group records were not counted:\n${shown.join('\n')}`;
}
