/** Fleet runs and groups as pure tables (docs/fleet.md): ids, exit codes, order, records, config, ACLs. */
import { describe, expect, it } from 'vitest';
import { mayPublish, topicMatches, type AclContext } from '../../src/broker/acl.js';
import { mosquittoGrants } from '../../src/cli/acl.js';
import { formatSummary } from '../../src/cli/fleet-summary.js';
import { resolveMembers, type FleetView } from '../../src/cli/fleet-members.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { groupsTopic, parseGroupsTopic } from '../../src/core/fleet-topics.js';
import {
  fleetExitCode,
  hostRequestId,
  newRunId,
  orderRows,
  RUN_ID_RE,
  type FleetRow,
  type RowStatus,
} from '../../src/core/fleet-run.js';
import { agentGroups, groupsPayload, readGroupsRecord } from '../../src/core/groups.js';
import { REQUEST_ID_RE } from '../../src/core/names.js';

const row = (host: string, status: RowStatus): FleetRow => ({ host, id: `r-${host}`, status });

describe('request ids of a run', () => {
  const longest = 'x'.repeat(24);
  const h63a = `a${'b'.repeat(61)}1`;
  const h63b = `a${'b'.repeat(61)}2`;
  it.each([
    ['r1', 'dns-1', 'r1-dns-1'],
    [longest, 'h'.repeat(39), `${longest}-${'h'.repeat(39)}`],
  ])('run %s, host %s → %s (plain when it fits)', (run, host, id) => {
    expect(hostRequestId(run, host)).toBe(id);
  });
  it('a host too long to fit is cut and hashed: valid, 64 characters, distinct per host, stable', () => {
    const a = hostRequestId(longest, h63a);
    const b = hostRequestId(longest, h63b);
    expect(a).toMatch(REQUEST_ID_RE);
    expect(b).toMatch(REQUEST_ID_RE);
    expect(a).toHaveLength(64);
    expect(a).not.toBe(b);
    expect(a.startsWith(`${longest}-abbb`)).toBe(true);
    expect(hostRequestId(longest, h63a)).toBe(a);
  });
  it('a new run id is a valid run id', () => {
    const id = newRunId(new Date('2026-12-07T07:25:12.345Z'), 'a1b2c3');
    expect(id).toBe('r20261207T072512-a1b2');
    expect(id).toMatch(RUN_ID_RE);
  });
});

describe('exit code and order', () => {
  it.each<[RowStatus[], number]>([
    [['succeeded', 'succeeded'], 0],
    [[], 0],
    [['succeeded', 'failed'], 1],
    [['succeeded', 'no_answer'], 1],
    [['rejected', 'offline'], 1],
    [['succeeded', 'offline'], 4],
    [['succeeded', 'not_started'], 4],
    [['succeeded', 'scheduled'], 4],
  ])('%j → %i', (statuses, code) => {
    expect(fleetExitCode(statuses.map((s, i) => row(`h${i}`, s)))).toBe(code);
  });
  it('failures first, then what did not run, then successes; the run order within each', () => {
    const rows = [
      row('a', 'succeeded'),
      row('b', 'offline'),
      row('c', 'timed_out'),
      row('d', 'succeeded'),
      row('e', 'failed'),
      row('f', 'not_started'),
    ];
    expect(orderRows(rows).map((r) => r.host)).toEqual(['c', 'e', 'b', 'f', 'a', 'd']);
  });
  it('the summary table makes what an agent wrote printable', () => {
    const text = formatSummary('r', 'x', [{ ...row('a', 'failed'), error: 'bad\u001b[2Jthing\nnext' }]);
    expect(text.includes('\u001b')).toBe(false);
    expect(text).toMatch(/bad\[2Jthingnext/);
    expect(text).toMatch(/run r: x on 1 host\(s\): 1 failed/);
  });
});

describe('group records', () => {
  const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
  it.each<[string, unknown, string]>([
    ['other host in payload', { host: 'dns-2', groups: ['dns'], ts: 1 }, 'payload host dns-2 differs'],
    ['invalid payload host', { host: 'A B', groups: ['dns'] }, 'payload host (invalid) differs'],
    ['no host', { groups: ['dns'] }, 'differs'],
    ['not JSON', '{nope', 'not JSON'],
    ['an array', [1], 'not a JSON object'],
    ['groups not a list', { host: 'dns-1', groups: 'dns' }, 'not a list'],
    ['a bad name', { host: 'dns-1', groups: ['DNS'] }, 'does not match'],
    ['too many', { host: 'dns-1', groups: Array.from({ length: 300 }, (_, i) => `g${i}`) }, 'at most 256'],
    ['huge', 'x'.repeat(40_000), 'over 32768'],
  ])('%s is not counted', (_name, payload, problem) => {
    const r = readGroupsRecord('dns-1', buf(payload));
    expect(r.ok).toBe(false);
    expect(!r.ok && !r.cleared && r.problem).toContain(problem);
  });
  it('an empty payload is a cleared record; a good one counts with its groups once each', () => {
    expect(readGroupsRecord('dns-1', Buffer.alloc(0))).toEqual({ ok: false, cleared: true });
    const r = readGroupsRecord('dns-1', buf({ host: 'dns-1', groups: ['dns', 'pis', 'dns'], ts: 5 }));
    expect(r).toEqual({ ok: true, record: { host: 'dns-1', groups: ['dns', 'pis'], ts: 5 } });
  });
  it('what an agent publishes: its groups plus its stagger groups; nothing when in none', () => {
    const groups = agentGroups(['pis'], {
      a: { stagger: { group: 'dns' } },
      b: {},
      c: { stagger: { group: 'pis' } },
    });
    expect(groups).toEqual(['dns', 'pis']);
    expect(JSON.parse(groupsPayload('h', groups, 7))).toEqual({ host: 'h', groups: ['dns', 'pis'], ts: 7 });
    expect(groupsPayload('h', [], 7)).toBe('');
  });
  it('the topic ends in the host id, and only a valid one parses', () => {
    expect(groupsTopic('homelab', 'dns-1')).toBe('homelab/_fleet/groups/dns-1');
    expect(parseGroupsTopic('homelab', 'homelab/_fleet/groups/dns-1')).toBe('dns-1');
    expect(parseGroupsTopic('homelab', 'homelab/_fleet/groups/a/b')).toBeUndefined();
    expect(parseGroupsTopic('homelab', 'homelab/_fleet/groups/UP')).toBeUndefined();
    expect(parseGroupsTopic('homelab', 'other/_fleet/groups/dns-1')).toBeUndefined();
  });
  it('members: a group sorted; named hosts in the order given, once each; missing status said', () => {
    const view: FleetView = {
      groups: new Map([
        ['b', ['dns']],
        ['a', ['dns', 'pis']],
        ['c', ['pis']],
      ]),
      status: new Map([
        ['a', 'online'],
        ['b', 'offline'],
      ]),
      ignored: [],
    };
    expect(resolveMembers(view, { group: 'dns' })).toEqual([
      { host: 'a', status: 'online' },
      { host: 'b', status: 'offline' },
    ]);
    expect(resolveMembers(view, { hosts: ['c', 'a', 'c'] })).toEqual([
      { host: 'c', status: 'missing' },
      { host: 'a', status: 'online' },
    ]);
  });
});

describe('groups: in the config', () => {
  const load = (groups: unknown) => parseConfig(JSON.stringify({ host: 'h1', groups }), '/t.yaml');
  it('accepts names like action names, default none', () => {
    expect(load(['dns', 'pis_2']).groups).toEqual(['dns', 'pis_2']);
    expect(parseConfig('host: h1\n', '/t.yaml').groups).toEqual([]);
  });
  it.each([
    [['Bad Name'], /groups\.0: group names must match/],
    [['dns', 'dns'], /groups: a group is listed twice/],
    ['dns', /groups: /],
  ])('%j is refused with its key path', (groups, message) => {
    expect(() => load(groups)).toThrow(ConfigError);
    expect(() => load(groups)).toThrow(message);
  });
});

describe('ACLs: an agent writes exactly its own groups record', () => {
  const ctx: AclContext = { prefix: 'homelab', discoveryPrefix: 'homeassistant' };
  const agent = { role: 'agent' as const, host: 'dns-1' };
  it('the embedded broker', () => {
    expect(mayPublish(agent, 'homelab/_fleet/groups/dns-1', ctx)).toBe(true);
    expect(mayPublish(agent, 'homelab/_fleet/groups/dns-2', ctx)).toBe(false);
    expect(mayPublish({ role: 'controller' }, 'homelab/_fleet/groups/dns-1', ctx)).toBe(false);
  });
  it('the Mosquitto acl_file', () => {
    const write = mosquittoGrants(agent, ctx).write;
    expect(write.some((f) => topicMatches(f, 'homelab/_fleet/groups/dns-1'))).toBe(true);
    expect(write.some((f) => topicMatches(f, 'homelab/_fleet/groups/dns-2'))).toBe(false);
  });
});
