/**
 * `switches:` — a Home Assistant switch made of an action that turns something on, one that turns it
 * off, and a command probe that reads whether it is on (docs/configuration.md § switches). Mounted by
 * schema.ts, which also runs the cross-checks below.
 */
import { z } from 'zod';
import { ACTION_NAME_RE } from '../core/names.js';
import type { ActionConfig } from './actions.js';
import { BOOLEAN_KINDS } from './command-probes.js';
import type { ProbeConfig } from './probes.js';

const name = z.string().regex(ACTION_NAME_RE, 'must be a name like ^[a-z0-9][a-z0-9_]{0,62}$');

export const switchSchema = z.strictObject({
  /** The action a switch-on runs: a whitelisted action, through the normal request pipeline. */
  turn_on: name,
  turn_off: name,
  /** A command probe with parse: exit_code or match: the only source of the switch's state. */
  probe: name,
  name: z.string().min(1).max(64).optional(),
  device_class: z.enum(['switch', 'outlet'], { error: 'device_class must be switch or outlet' }).optional(),
});

export type SwitchConfig = z.output<typeof switchSchema>;

export const switchesSchema = z
  .record(z.string().regex(ACTION_NAME_RE, 'switch names must match ^[a-z0-9][a-z0-9_]{0,62}$'), switchSchema)
  .default({});

interface SwitchContext {
  actions: Readonly<Record<string, ActionConfig>>;
  probes: Readonly<Record<string, ProbeConfig>>;
  switches: Readonly<Record<string, SwitchConfig>>;
}

/** Each switch's actions and probe exist and fit; every problem says how to fix it. */
export function checkSwitches(
  config: SwitchContext,
  issue: (path: (string | number)[], message: string) => void,
): void {
  for (const [sw, s] of Object.entries(config.switches)) {
    const at = (key: string) => ['switches', sw, key];
    for (const key of ['turn_on', 'turn_off'] as const) {
      const action = Object.hasOwn(config.actions, s[key]) ? config.actions[s[key]] : undefined;
      if (!action) {
        issue(
          at(key),
          `names no action — add an action ${s[key]} under actions: (e.g. argv: [systemctl, ${key === 'turn_on' ? 'start' : 'stop'}, nginx.service] with sudo: true), or fix the name`,
        );
        continue;
      }
      // HA's switch sends no params: each must fall back to its default.
      for (const [param, spec] of Object.entries(action.params))
        if (spec.default === undefined)
          issue(
            at(key),
            `action ${s[key]} has param "${param}" without a default, and a switch sends no params — give it a default, or make an action with the value written out`,
          );
    }
    if (s.turn_on === s.turn_off)
      issue(
        at('turn_off'),
        `is the same action as turn_on (${s.turn_on}) — a switch needs one action that turns it on and another that turns it off`,
      );
    const probe = Object.hasOwn(config.probes, s.probe) ? config.probes[s.probe] : undefined;
    if (!probe) {
      issue(
        at('probe'),
        `names no probe — add a probe ${s.probe} under probes: (type: command, parse: exit_code, argv: a command that exits 0 while it is on), or fix the name`,
      );
    } else if (probe.type !== 'command' || !BOOLEAN_KINDS.includes(probe.parse)) {
      const is = probe.type === 'command' ? `parse: ${probe.parse}` : `type: ${probe.type}`;
      issue(
        at('probe'),
        `probe ${s.probe} has ${is}, which reads no on/off state — a switch needs a command probe with parse: exit_code (on when it exits 0) or parse: match (on when its output matches pattern)`,
      );
    }
  }
}
