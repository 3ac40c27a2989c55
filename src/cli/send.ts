/** `homelab-cmd send H ACTION`: publish one request, wait for its final result, print it. */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/load.js';
import type { OutputMessage } from '../core/formats.js';
import { ACTION_NAME_RE, HOST_ID_RE, REQUEST_ID_RE } from '../core/names.js';
import { brokerUrls, redactUrl } from '../core/failover.js';
import { ConnectionError, UsageError } from '../errors.js';
import { connectFirst, refusal, type ClientOptions } from './client.js';
import { readUpRecord } from './up-record.js';
import { offlineLine, readPresence, unknownHostLine } from './send-preflight.js';
import { err, out, parse, type Verb } from './args.js';
import { buildRequest, requestSpec, signingKey, signRequest, type ReplyTo } from './request-spec.js';
import { NotFinished, sendAndWait } from './send-wait.js';

export interface Target extends ClientOptions {
  prefix: string;
}

/**
 * `--url`/`--prefix` default to mqtt.url/mqtt.prefix of `--config`, else the broker of a running
 * `homelab-cmd up` of this user (it may have moved off 1883), else the contract's defaults.
 * `--url` may be repeated (like a list in mqtt.url): the brokers are tried in order.
 */
export function targetFrom(
  values: {
    url?: string | string[] | undefined;
    prefix?: string | undefined;
    config?: string | undefined;
  },
  env: NodeJS.ProcessEnv = process.env,
): Target {
  const config = values.config ? loadConfig(values.config) : undefined;
  const given = values.url === undefined ? [] : brokerUrls(values.url);
  const up = given.length === 0 && !config ? readUpRecord(env) : undefined;
  return {
    url: given.length > 0 ? given : (config?.mqtt.url ?? up?.url ?? 'mqtt://127.0.0.1:1883'),
    prefix: values.prefix ?? config?.mqtt.prefix ?? up?.prefix ?? 'homelab',
    username: config?.mqtt.username,
    password: config?.mqtt.password,
    caFile: config?.mqtt.ca_file,
    certFile: config?.mqtt.cert_file,
    keyFile: config?.mqtt.key_file,
    insecure: config?.mqtt.insecure,
  };
}

export const targetOptions = {
  url: { type: 'string', short: 'u', multiple: true },
  prefix: { type: 'string' },
  config: { type: 'string', short: 'c' },
} as const;

export const sendVerb: Verb = {
  name: 'send',
  usage: `Usage: homelab-cmd send HOST ACTION [--param k=v]... [--timeout S] [--wait S]
                        [--id ID] [--key-file K] [--follow] [--force] [--url U] [--prefix P] [--config F]

Publishes a request to P/HOST/cmd/ACTION and waits (default 60 s) for its final
result on P/HOST/result/ID, printing progress to stderr and the result as JSON
to stdout. Exit 0 when succeeded, 1 otherwise, 2 on usage or connection errors,
3 when the request was accepted but is not finished within --wait (scheduled
for later by a stagger group, or still running): it prints that result and how
to fetch the final one. It first reads HOST's retained status: an offline host
is said so on stderr (the request is still sent, and expires after --wait); a
host with no retained status at all is not sent to (exit 2, with the hosts the
broker knows) unless --force is given.
--url and --prefix default to mqtt.url and mqtt.prefix of --config, else the
broker of a running homelab-cmd up, else mqtt://127.0.0.1:1883 and homelab; --url may be repeated, and the brokers are
tried in order until one answers. --id makes a retry safe: an id never runs twice.
The request carries ts and ttl = --wait (and MQTT 5 message expiry as long): if
it has not reached the agent by then, it never runs (error_code expired).
--key-file signs the request (HMAC-SHA256, docs/security.md); it defaults to
security.key_file of --config. --follow prints the command's output live
(stdout lines to stdout, stderr lines to stderr), then the result.

       homelab-cmd send (--group G | --hosts H1,H2,...) ACTION [--serial | --parallel N]
                        [--check] [--json] [--run-id R] [--param k=v]... [--wait S] ...

The same action on many hosts: the members of group G (agents declare groups:
in their config and publish them) or the hosts named. Hosts not online are not
sent to. --parallel N sends to N at a time (default: all); --serial sends to the
next host only after the previous one succeeded and stops at the first that did
not. --check lists the hosts with online/offline and sends nothing. Each host's
request id is RUN-ID-HOST (hashed when longer than 64 characters): repeat with
--run-id R to collect the results of run R without running anything twice.
Prints one summary, failures first (--json: one JSON object). Exit 0 when every
host succeeded, 1 when any failed (or gave no answer within --wait), 4 when none
failed but some were offline, not started or scheduled for later, 2 on usage or
connection errors. docs/fleet.md.`,
  async run(argv) {
    const { values, positionals } = parse(
      this,
      argv,
      {
        ...targetOptions,
        param: { type: 'string', short: 'P', multiple: true },
        timeout: { type: 'string', short: 't' },
        wait: { type: 'string', short: 'w' },
        id: { type: 'string' },
        'key-file': { type: 'string', short: 'k' },
        follow: { type: 'boolean', short: 'f' },
        ...fleetOptions,
        force: { type: 'boolean' },
      },
      true,
    );
    if (values.help) return (out(this.usage), 0);
    if (values.group !== undefined || values.hosts !== undefined)
      return (await import('./send-fleet.js')).sendFleet(values, positionals, this.usage);
    for (const flag of FLEET_ONLY)
      if (values[flag] !== undefined)
        throw new UsageError(`--${flag} goes with --group or --hosts (docs/fleet.md)\n\n${this.usage}`);
    const [host, action, ...extra] = positionals;
    if (!host || !action || extra.length > 0)
      throw new UsageError(`give exactly HOST and ACTION\n\n${this.usage}`);
    if (!HOST_ID_RE.test(host))
      throw new UsageError(`HOST "${host}" is not a host id (${HOST_ID_RE.source})`);
    if (!ACTION_NAME_RE.test(action))
      throw new UsageError(`ACTION "${action}" is not an action name (${ACTION_NAME_RE.source})`);
    const id = values.id ?? randomUUID();
    if (!REQUEST_ID_RE.test(id)) throw new UsageError(`--id "${id}" must match ${REQUEST_ID_RE.source}`);
    const spec = requestSpec(action, values);
    const target = targetFrom(values);
    const request = buildRequest(id, spec);
    const key = signingKey(values);
    // Signed last, over the request as it will be sent — with the reply topic and correlation data
    // sendAndWait picks, which v2 binds (docs/security.md § Signed requests).
    const signer =
      key === undefined
        ? undefined
        : (replyTo: ReplyTo | undefined) => signRequest(key, host, request, replyTo);
    const waitS = spec.waitS;
    const { client, url } = await connectFirst(target);
    try {
      // Before publishing: is there such a host, and is it there (send-preflight.ts)?
      const presence = await readPresence(client, target.prefix, host);
      if (!presence.row && !values.force) {
        err(`homelab-cmd send: ${unknownHostLine(host, target.prefix, redactUrl(url), presence.known)}`);
        return 2;
      }
      if (presence.row?.status === 'offline')
        err(`homelab-cmd send: ${offlineLine(host, presence.row, waitS, Date.now())}`);
      const follow = values.follow
        ? (m: OutputMessage) =>
            (m.stream === 'stdout' ? out : err)(
              m.lines.join('\n') + (m.truncated ? '\n[output truncated]' : ''),
            )
        : undefined;
      const result = await sendAndWait(
        client,
        target.prefix,
        host,
        request,
        waitS * 1000,
        (r) => err(`${r.status}${r.run_at ? ` (runs at ${r.run_at})` : ''}…`),
        follow,
        signer,
      );
      out(JSON.stringify(result, null, 2));
      if (result.error_code === 'expired')
        err(
          `homelab-cmd send: not run — ${result.error ?? 'the request expired'} (its ttl is --wait, ${waitS} s: a longer --wait lets it wait longer for a host that is offline)`,
        );
      return result.status === 'succeeded' ? 0 : 1;
    } catch (e) {
      if (e instanceof NotFinished) {
        // Accepted, not failed: the result is still to come (exit 3, docs/mqtt-api.md § homelab-cmd send).
        out(JSON.stringify(e.last, null, 2));
        err(`homelab-cmd send: ${e.message}`);
        return 3;
      }
      const refused = refusal(e, url, `send to ${host} and read its results`);
      // A refusal, or a broker that stopped answering (client.ts boundAnswers): exit 2, as any connection error.
      if (refused instanceof ConnectionError) throw refused;
      err(`homelab-cmd send: ${(e as Error).message}`);
      return 1;
    } finally {
      await client.endAsync();
    }
  },
};

/** `send --group/--hosts` (src/cli/send-fleet.ts, docs/fleet.md). */
export const fleetOptions = {
  group: { type: 'string', short: 'g' },
  hosts: { type: 'string' },
  serial: { type: 'boolean' },
  parallel: { type: 'string' },
  check: { type: 'boolean' },
  json: { type: 'boolean' },
  'run-id': { type: 'string' },
} as const;
const FLEET_ONLY = ['serial', 'parallel', 'check', 'json', 'run-id'] as const;
