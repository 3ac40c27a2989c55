/**
 * What this host writes on the fleet topics of its stagger groups: its membership, its own record,
 * its claims and their retraction. One owner for these writes, so that no other part can publish
 * another host's record: each member republishes only its own (docs/stagger.md § Durability and
 * outages).
 */
import { claimTopic, lastTopic, memberTopic } from '../core/fleet-topics.js';
import type { Claim, StaggerRecord } from '../core/stagger.js';
import type { Logger } from '../log.js';
import type { Publisher } from './publisher.js';

export class StaggerOutbox {
  constructor(
    private readonly prefix: string,
    private readonly host: string,
    private readonly mqtt: Publisher,
    private readonly log: Logger,
  ) {}

  /** Retained: this host has an action in `group`. */
  member(group: string): void {
    this.send(memberTopic(this.prefix, group, this.host), JSON.stringify({ host: this.host }), true);
  }

  /** This host's own record, on its own topic: the only record it ever publishes. */
  own(group: string, rec: StaggerRecord): void {
    this.send(lastTopic(this.prefix, group, this.host), JSON.stringify(rec), true);
  }

  /** Publishes this host's claim; the caller awaits it, as a failed claim must not go on to decide. */
  claim(group: string, mine: Claim, lifetimeMs: number): Promise<void> {
    // Expiry: a claim of an agent that died mid-decision vanishes by itself.
    return this.mqtt.publish(claimTopic(this.prefix, group, this.host), JSON.stringify(mine), {
      retain: true,
      properties: { messageExpiryInterval: Math.ceil(lifetimeMs / 1000) },
    });
  }

  retract(group: string): void {
    this.send(claimTopic(this.prefix, group, this.host), '', true);
  }

  private send(topic: string, payload: string, retain: boolean): void {
    this.mqtt
      .publish(topic, payload, { retain })
      .catch((err: unknown) => this.log.warn({ err, topic }, 'could not publish a stagger message'));
  }
}
