/**
 * This host's groups record: at every connect, the retained `P/_fleet/groups/H` says which groups the
 * host belongs to, so `send --group` can find it (docs/fleet.md § Groups). Its own part because it
 * shares nothing with the command pipeline; a broker that refuses it costs `send --group` this host,
 * nothing else.
 */
import type { Config } from '../config/load.js';
import { groupsTopic } from '../core/fleet-topics.js';
import { agentGroups, groupsPayload } from '../core/groups.js';
import type { Logger } from '../log.js';
import type { AgentPart } from './part.js';
import type { MqttSession } from './session.js';

export function groupsRecord(config: Config, session: Pick<MqttSession, 'publish'>, log: Logger): AgentPart {
  // Its groups, at every connect: a changed groups: list replaces the record, none clears it.
  return {
    name: 'groups',
    start: () => undefined,
    onConnect: async () => {
      try {
        await session.publish(
          groupsTopic(config.mqtt.prefix, config.host),
          groupsPayload(config.host, agentGroups(config.groups, config.actions), Date.now()),
          { retain: true },
        );
      } catch (err) {
        log.warn(
          { err },
          "could not publish this host's groups (check the broker ACL: docs/fleet.md § Groups)",
        );
      }
    },
    stop: () => undefined,
  };
}
