/**
 * A switch's retained state as pure data (docs/mqtt-api.md § Switches): ON/OFF from its probe's
 * latest reading only — never from what was asked — and the outcome of the last turn_on/turn_off.
 */
import type { SwitchConfig } from '../config/switches.js';
import type { ProbeState, Result, SwitchState } from './formats.js';

/** The last final result of the switch's turn_on or turn_off action. */
export type LastAction = Pick<Result, 'id' | 'action' | 'status' | 'error'>;

const MAX_ERROR = 400;

export function switchState(
  name: string,
  sw: SwitchConfig,
  probe: ProbeState | undefined,
  last: LastAction | undefined,
): SwitchState {
  const on = probe?.ok === true && typeof probe.value === 'boolean' ? probe.value : undefined;
  return {
    name,
    state: on === undefined ? null : on ? 'ON' : 'OFF',
    probe: sw.probe,
    checked_at: probe?.checked_at ?? null,
    error: errorOf(sw, probe, last),
    last_action: last?.action ?? null,
    last_status: last?.status ?? null,
    last_id: last?.id ?? null,
  };
}

/** A failed or refused turn_on/turn_off first (what the user just did), then a failing probe. */
function errorOf(
  sw: SwitchConfig,
  probe: ProbeState | undefined,
  last: LastAction | undefined,
): string | null {
  if (last && last.status !== 'succeeded') {
    const role = last.action === sw.turn_on ? 'turning on' : 'turning off';
    return `${role} (${last.action}) ended ${last.status}: ${last.error ?? 'no reason given'}`.slice(
      0,
      MAX_ERROR,
    );
  }
  if (probe && !probe.ok)
    return `the state probe ${sw.probe} fails: ${probe.error ?? ''}`.slice(0, MAX_ERROR);
  return null;
}

/** The switches a final result of `action` concerns: those it turns on or off. */
export function switchesOf(switches: Readonly<Record<string, SwitchConfig>>, action: string): string[] {
  return Object.entries(switches)
    .filter(([, s]) => s.turn_on === action || s.turn_off === action)
    .map(([n]) => n);
}
