import { describe, it, expect } from 'vitest';
import {
  filterCovers,
  grantsFor,
  mayPublish,
  maySubscribe,
  topicMatches,
  type AclContext,
  type Role,
} from '../../src/broker/acl.js';

const ctx: AclContext = { prefix: 'homelab', discoveryPrefix: 'homeassistant' };
const agent: Role = { role: 'agent', host: 'pihole-1' };
const controller: Role = { role: 'controller' };

describe('topicMatches (MQTT 3.1.1 § 4.7)', () => {
  it.each<[string, string, boolean]>([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b', false],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b/C', false],
    ['a/+/c', 'a/x/c', true],
    ['a/+/c', 'a/x/y/c', false],
    ['a/+', 'a/', true], // "+" matches an empty level
    ['a/+', 'a', false],
    ['+', 'a', true],
    ['+', 'a/b', false],
    ['+/+', '/a', true],
    ['a/#', 'a', true], // "#" also matches the parent level [MQTT-4.7.1-2]
    ['a/#', 'a/b', true],
    ['a/#', 'a/b/c/d', true],
    ['a/#', 'ab', false],
    ['a/#', 'b/a', false],
    ['#', 'a', true],
    ['#', 'a/b/c', true],
    ['#', '/', true],
    ['+/#', 'a', true],
    ['a/+/+/set', 'a/x/y/set', true],
    ['a/+/+/set', 'a/x/set', false],
    ['a/+/+/set', 'a/x/y/z/set', false],
    // [MQTT-4.7.2-1] wildcards at the first level do not match "$" topics.
    ['#', '$SYS/broker/uptime', false],
    ['+/broker/uptime', '$SYS/broker/uptime', false],
    ['+', '$SYS', false],
    ['$SYS/#', '$SYS/broker/uptime', true],
    ['$SYS/+/uptime', '$SYS/broker/uptime', true],
    ['a/#', 'a/$x', true], // "$" only matters at the first level
  ])('%j matches %j: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

describe('filterCovers (a grant covers a subscription filter)', () => {
  it.each<[string, string, boolean]>([
    ['#', '#', true],
    ['#', 'a/b', true],
    ['#', 'a/+', true],
    ['#', 'a/#', true],
    ['a/#', 'a', true],
    ['a/#', 'a/#', true],
    ['a/#', 'a/+/c', true],
    ['a/#', '#', false],
    ['a/#', 'b/#', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false], // a/# also reaches a and a/b/c
    ['a/+', 'a/b/c', false],
    ['a/b', 'a/+', false],
    ['a/b', 'a/#', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['+/status', 'x/status', true],
    ['+/status', '+/status', true],
    ['+/status', '#', false],
    ['+/status', '+/+', false],
    // "$" topics are not reached through a first-level wildcard grant.
    ['#', '$SYS/#', false],
    ['#', '$SYS/broker/uptime', false],
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
    // Shared subscriptions are judged by the filter behind "$share/<group>/".
    ['a/#', '$share/g/a/b', true],
    ['a/#', '$share/g/b/c', false],
    ['#', '$share/g/#', true],
    ['a/#', '$share/g', false],
    ['a/#', '$share/g/', false],
  ])('%j covers %j: %s', (grant, filter, expected) => {
    expect(filterCovers(grant, filter)).toBe(expected);
  });
});

describe('agent role: publish', () => {
  // docs/mqtt-api.md § Broker roles: write P/<its host>/# (except its cmd/# and param/+/+/set),
  // the fleet topics ending in its own host id and its own discovery topics homeassistant/+/<its host>/#.
  it.each<[string, boolean]>([
    ['homelab/pihole-1/status', true],
    ['homelab/pihole-1/heartbeat', true],
    ['homelab/pihole-1/result', true],
    ['homelab/pihole-1/result/abc-123', true],
    ['homelab/pihole-1/output/abc-123', true],
    ['homelab/pihole-1/param/clear_logs/days', true],
    ['homelab/_fleet/stagger/dns/last/pihole-1', true],
    ['homelab/_fleet/stagger/dns/claim/pihole-1', true],
    ['homelab/_fleet/stagger/dns/member/pihole-1', true],
    ['homelab/_fleet/groups/pihole-1', true],
    // Never another host's fleet records, nor the shared group record of the previous layout.
    ['homelab/_fleet/stagger/dns/last/pihole-2', false],
    ['homelab/_fleet/stagger/dns/member/ghost', false],
    ['homelab/_fleet/stagger/dns', false],
    ['homelab/_fleet/stagger/pihole-1/last/pihole-2', false],
    ['homeassistant/button/pihole-1/restart_dns/config', true],
    ['homeassistant/binary_sensor/pihole-1/status/config', true],
    ['homeassistant/sensor/pihole-1/last_result/config', true],
    ['homeassistant/button/pihole-1', true], // "#" also matches the parent level
    // Never commands: not its own, not another host's.
    ['homelab/pihole-1/cmd', false],
    ['homelab/pihole-1/cmd/restart_dns', false],
    ['homelab/pihole-1/cmd/x/y', false],
    ['homelab/pihole-2/cmd', false],
    ['homelab/pihole-2/cmd/restart_dns', false],
    // Never sets params, its own or another's.
    ['homelab/pihole-1/param/clear_logs/days/set', false],
    ['homelab/pihole-2/param/clear_logs/days/set', false],
    // Not another host's state.
    ['homelab/pihole-2/status', false],
    ['homelab/pihole-2/result/abc', false],
    ['homelab/pihole-2/heartbeat', false],
    // Not another host's discovery, not HA's birth message, nothing outside its grants.
    ['homeassistant/button/pihole-2/restart_dns/config', false],
    ['homeassistant/status', false],
    ['homelab', false],
    ['homelab/pihole-1x/status', false],
    ['other/pihole-1/status', false],
    ['$SYS/broker/uptime', false],
  ])('%s → %s', (topic, expected) => {
    expect(mayPublish(agent, topic, ctx)).toBe(expected);
  });

  it('the deny carve-outs hold for a host id that happens to look like a level name', () => {
    const cmdHost: Role = { role: 'agent', host: 'cmd' };
    expect(mayPublish(cmdHost, 'homelab/cmd/cmd/x', ctx)).toBe(false);
    expect(mayPublish(cmdHost, 'homelab/cmd/status', ctx)).toBe(true);
    expect(mayPublish(cmdHost, 'homelab/pihole-1/cmd/x', ctx)).toBe(false);
  });

  it('follows a custom prefix and discovery prefix', () => {
    const custom: AclContext = { prefix: 'lab/cmds', discoveryPrefix: 'ha' };
    expect(mayPublish(agent, 'lab/cmds/pihole-1/status', custom)).toBe(true);
    expect(mayPublish(agent, 'lab/cmds/pihole-1/cmd/x', custom)).toBe(false);
    expect(mayPublish(agent, 'ha/button/pihole-1/x/config', custom)).toBe(true);
    expect(mayPublish(agent, 'homelab/pihole-1/status', custom)).toBe(false);
    expect(mayPublish(agent, 'homeassistant/button/pihole-1/x/config', custom)).toBe(false);
  });
});

describe('agent role: subscribe', () => {
  // Read P/<its host>/cmd/#, P/<its host>/param/#, P/+/status, P/_fleet/# and homeassistant/status.
  it.each<[string, boolean]>([
    ['homelab/pihole-1/cmd/#', true],
    ['homelab/pihole-1/cmd/+', true],
    ['homelab/pihole-1/cmd', true],
    ['homelab/pihole-1/cmd/restart_dns', true],
    ['homelab/pihole-1/param/#', true],
    ['homelab/pihole-1/param/+/+/set', true],
    ['homelab/+/status', true],
    ['homelab/pihole-2/status', true],
    ['homelab/_fleet/#', true],
    ['homelab/_fleet/stagger/dns', true],
    ['homeassistant/status', true],
    ['$share/agents/homelab/pihole-1/cmd/#', true],
    // Not another host's commands, in any spelling.
    ['homelab/pihole-2/cmd/#', false],
    ['homelab/pihole-2/cmd/restart_dns', false],
    ['homelab/+/cmd/#', false],
    ['homelab/+/cmd/+', false],
    ['$share/agents/homelab/pihole-2/cmd/#', false],
    ['homelab/pihole-2/param/#', false],
    // Not everything, not results or heartbeats of others, not $SYS.
    ['#', false],
    ['homelab/#', false],
    ['homelab/+/#', false],
    ['homelab/pihole-2/result/#', false],
    ['homelab/+/heartbeat', false],
    ['homelab/+/+', false],
    ['homeassistant/#', false],
    ['$SYS/#', false],
  ])('%s → %s', (filter, expected) => {
    expect(maySubscribe(agent, filter, ctx)).toBe(expected);
  });
});

describe('controller role', () => {
  it.each<[string, boolean]>([
    ['homelab/pihole-1/cmd', true],
    ['homelab/pihole-1/cmd/restart_dns', true],
    ['homelab/pihole-2/cmd/apply_updates', true],
    ['homelab/pihole-1/param/clear_logs/days/set', true],
    ['homeassistant/status', true],
    // A controller does not impersonate an agent's state, results or discovery.
    ['homelab/pihole-1/status', false],
    ['homelab/pihole-1/result/abc', false],
    ['homelab/pihole-1/heartbeat', false],
    ['homelab/pihole-1/param/clear_logs/days', false],
    ['homelab/_fleet/stagger/dns', false],
    ['homeassistant/button/pihole-1/x/config', false],
    ['homelab/pihole-1/param/a/set', false],
    ['$SYS/broker/uptime', false],
  ])('publish %s → %s', (topic, expected) => {
    expect(mayPublish(controller, topic, ctx)).toBe(expected);
  });

  it.each<[string, boolean]>([
    ['#', true],
    ['homelab/#', true],
    ['homelab/+/result/+', true],
    ['homelab/pihole-1/cmd/#', true],
    ['homeassistant/#', true],
    ['$share/ha/homelab/#', true],
    // "#" does not reach "$SYS" [MQTT-4.7.2-1].
    ['$SYS/#', false],
    ['$SYS/broker/clients/connected', false],
  ])('subscribe %s → %s', (filter, expected) => {
    expect(maySubscribe(controller, filter, ctx)).toBe(expected);
  });
});

describe('grantsFor', () => {
  it('an agent is bound to its own host', () => {
    const g = grantsFor(agent, ctx);
    for (const f of [...g.read, ...g.write, ...g.denyWrite]) {
      const levels = f.split('/');
      if (levels[0] === 'homelab' && levels[1] !== '+' && levels[1] !== '_fleet')
        expect(levels[1]).toBe('pihole-1');
    }
    expect(g.denyWrite).toEqual(
      expect.arrayContaining(['homelab/pihole-1/cmd/#', 'homelab/pihole-1/param/+/+/set']),
    );
  });

  it('a controller has no deny carve-outs and reads everything', () => {
    expect(grantsFor(controller, ctx)).toMatchObject({ read: ['#'], denyWrite: [] });
  });
});
