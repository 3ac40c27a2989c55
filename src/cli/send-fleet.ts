/**
 * `homelab-cmd send (--group G | --hosts a,b) ACTION`: the same request to many hosts, in parallel or
 * one at a time, then one summary (docs/fleet.md). Each host gets its own request id `<run-id>-<host>`,
 * so a retry with the same --run-id collects the stored results and never runs anything twice.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ACTION_NAME_RE, HOST_ID_RE } from '../core/names.js';
import {
  RUN_ID_RE,
  countRows,
  fleetExitCode,
  FLEET_EXIT,
  hostRequestId,
  newRunId,
  orderRows,
  type FleetRow,
} from '../core/fleet-run.js';
import { UsageError } from '../errors.js';
import { err, intOption, out } from './args.js';
import { connectFirst, refusal } from './client.js';
import { emptyGroup, formatIgnored, formatMembers, readFleet, resolveMembers } from './fleet-members.js';
import { formatSummary } from './fleet-summary.js';
import { FleetWaiter, type Outcome } from './fleet-waiter.js';
import { buildRequest, requestSpec, signingKey, signRequest, type RequestSpec } from './request-spec.js';
import { targetFrom } from './send.js';

export interface FleetValues {
  group?: string | undefined;
  hosts?: string | undefined;
  serial?: boolean | undefined;
  parallel?: string | undefined;
  check?: boolean | undefined;
  json?: boolean | undefined;
  'run-id'?: string | undefined;
  id?: string | undefined;
  follow?: boolean | undefined;
  param?: string[] | undefined;
  timeout?: string | undefined;
  wait?: string | undefined;
  'key-file'?: string | undefined;
  url?: string[] | undefined;
  prefix?: string | undefined;
  config?: string | undefined;
}

/** At most this many hosts in one run: a typo in --hosts must not become a flood. */
const MAX_HOSTS = 10_000;

export async function sendFleet(values: FleetValues, positionals: string[], usage: string): Promise<number> {
  const [action, ...extra] = positionals;
  if (values.group !== undefined && values.hosts !== undefined)
    throw new UsageError('give --group or --hosts, not both');
  if (!action || extra.length > 0)
    throw new UsageError(`with --group or --hosts give exactly one ACTION (no HOST)\n\n${usage}`);
  if (!ACTION_NAME_RE.test(action))
    throw new UsageError(`ACTION "${action}" is not an action name (${ACTION_NAME_RE.source})`);
  if (values.id !== undefined) throw new UsageError('--id is for one host; a fleet run takes --run-id');
  if (values.follow) throw new UsageError('--follow is for one host: send to that host alone to follow it');
  if (values.serial && values.parallel !== undefined)
    throw new UsageError('give --serial or --parallel N, not both');
  const parallel = values.serial ? 1 : intOption('parallel', values.parallel, 1, MAX_HOSTS);
  const which = targetSpec(values);
  const runId = values['run-id'] ?? newRunId(new Date(), randomBytes(2).toString('hex'));
  if (!RUN_ID_RE.test(runId))
    throw new UsageError(`--run-id "${runId}" must match ${RUN_ID_RE.source} (it prefixes every host's id)`);
  const spec = requestSpec(action, values);
  const key = signingKey(values);
  const target = targetFrom(values);

  const { client, url } = await connectFirst(target);
  try {
    const view = await readFleet(client, target.prefix);
    const ignored = formatIgnored(view.ignored);
    if (ignored) err(ignored);
    const members = resolveMembers(view, which);
    if (members.length === 0 && 'group' in which) throw emptyGroup(which.group, target.prefix, view);
    const title = 'group' in which ? `group ${which.group}` : 'hosts';
    if (values.check) {
      const down = members.filter((m) => m.status !== 'online').map((m) => m.host);
      if (values.json)
        out(JSON.stringify({ ...labelOf(which), action, hosts: members, not_online: down }, null, 2));
      else out(formatMembers(title, members));
      return down.length > 0 ? FLEET_EXIT.pending : FLEET_EXIT.ok;
    }
    err(
      `run ${runId}: ${action} on ${members.length} host(s) of ${title}, ${values.serial ? 'one at a time' : `${parallel ?? 'all'} at once`} — repeat with --run-id ${runId} to collect the results without running anything twice`,
    );
    const started = performance.now();
    const rows = await runAll(client, target.prefix, runId, members, spec, {
      parallel: parallel ?? Math.max(1, members.length),
      serial: values.serial === true,
      key,
    });
    const code = fleetExitCode(rows);
    if (values.json)
      out(
        JSON.stringify(
          {
            run_id: runId,
            action,
            ...labelOf(which),
            exit_code: code,
            // From the first request to the last outcome: what the bench compares with a raw fan-out.
            elapsed_ms: Math.round(performance.now() - started),
            counts: countRows(rows),
            hosts: orderRows(rows),
          },
          null,
          2,
        ),
      );
    else out(formatSummary(runId, action, orderRows(rows)));
    return code;
  } catch (e) {
    throw refusal(e, url, `read the fleet's groups and send ${action} to its hosts`);
  } finally {
    await client.endAsync();
  }
}

function targetSpec(values: FleetValues): { group: string } | { hosts: string[] } {
  if (values.group !== undefined) {
    if (!ACTION_NAME_RE.test(values.group))
      throw new UsageError(`--group "${values.group}" is not a group name (${ACTION_NAME_RE.source})`);
    return { group: values.group };
  }
  const hosts = (values.hosts ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  if (hosts.length === 0) throw new UsageError('--hosts takes a comma-separated list of host ids');
  if (hosts.length > MAX_HOSTS) throw new UsageError(`--hosts names more than ${MAX_HOSTS} hosts`);
  for (const h of hosts)
    if (!HOST_ID_RE.test(h)) throw new UsageError(`--hosts: "${h}" is not a host id (${HOST_ID_RE.source})`);
  return { hosts };
}

const labelOf = (which: { group: string } | { hosts: string[] }) =>
  'group' in which ? { group: which.group } : { hosts_named: which.hosts };

/**
 * Sends to every online member, `parallel` at a time; offline ones are never sent to. Serial: the next
 * host only after the previous one succeeded; the first that did not stops the run, and the rest are
 * `not_started` (docs/fleet.md § Serial and parallel).
 */
async function runAll(
  client: Parameters<typeof readFleet>[0],
  prefix: string,
  runId: string,
  members: readonly { host: string; status: string }[],
  spec: RequestSpec,
  opts: { parallel: number; serial: boolean; key: string | undefined },
): Promise<FleetRow[]> {
  const rows: FleetRow[] = members.map((m) => ({
    host: m.host,
    id: hostRequestId(runId, m.host),
    status: m.status === 'online' ? 'not_started' : 'offline',
  }));
  const todo = rows.filter((r) => r.status === 'not_started');
  // A reboot is minutes of silence otherwise: say when a host goes down and is back (fleet.md).
  const waiter = new FleetWaiter(client, prefix, (host, p) => {
    if (p.status === 'rebooting')
      err(`${host}: rebooting${p.reboot?.boot_id_after ? ' — back, checking it' : ''}`);
  });
  try {
    await waiter.subscribe(todo);
    let next = 0;
    let stopped = false;
    const worker = async () => {
      while (!stopped && next < todo.length) {
        const row = todo[next++] as FleetRow;
        const request = buildRequest(row.id, spec);
        // Stamped as it leaves, so its ttl (= --wait) counts from now (docs/mqtt-api.md § Late requests).
        request.ts = Date.now();
        if (opts.key !== undefined) signRequest(opts.key, row.host, request, undefined);
        const outcome = await waiter.send(row.host, request, spec.waitS * 1000);
        Object.assign(row, rowOf(outcome));
        err(`${row.host}: ${row.status}${row.run_at ? ` (runs at ${row.run_at})` : ''}`);
        if (opts.serial && row.status !== 'succeeded') stopped = true;
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.parallel, todo.length) }, worker));
  } finally {
    waiter.stop();
  }
  return rows;
}

function rowOf(o: Outcome): Partial<FleetRow> {
  if (o.kind === 'scheduled') return { status: 'scheduled', run_at: o.runAt };
  if (o.kind === 'no_answer')
    return o.last === 'scheduled'
      ? { status: 'scheduled' }
      : {
          status: 'no_answer',
          error:
            o.last === 'rebooting'
              ? 'still rebooting when the wait ended (not back yet, or its checks not passed) — raise --wait above a reboot, and collect it with the same --run-id'
              : `no final result within the wait${o.last ? ` (last seen: ${o.last})` : ''} — check with homelab-cmd status, or raise --wait`,
        };
  const r = o.result;
  const status = (['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted', 'cancelled'] as const).find(
    (s) => s === r.status,
  );
  return {
    status: status ?? 'failed',
    exit_code: r.exit_code,
    duration_ms: r.duration_ms,
    error_code: r.error_code,
    error: r.error,
  };
}
