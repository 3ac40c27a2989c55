/**
 * The Running sensor and the Cancel button (docs/home-assistant.md § Cancel and Running): the state they
 * read (core/running.ts), what the button sends (rendered as HA renders it, then parsed as the agent
 * parses it), when it is available, and HA's limits for the worst case.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { CANCEL_OLDEST } from '../../src/core/cancel.js';
import { buildDiscovery, type DiscoveryMessage } from '../../src/core/discovery.js';
import { CANCEL_COMMAND_TEMPLATE, CANCEL_TTL_S, runningEntities } from '../../src/core/discovery-running.js';
import { parseDelivery } from '../../src/core/request.js';
import { staleness } from '../../src/core/freshness.js';
import {
  IDLE,
  lastLine,
  RUNNING_LINE_MAX,
  runningState,
  runningStateSchema,
  type RunView,
} from '../../src/core/running.js';
import { hostTopics } from '../../src/core/topics.js';
import { VERSION } from '../../src/version.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { haveJinja, renderTemplates } from '../helpers/jinja.js';

const build = (yaml: string): DiscoveryMessage[] => {
  const c = parseConfig(yaml, '/nonexistent/agent.yaml', {});
  return buildDiscovery({
    host: c.host,
    prefix: c.mqtt.prefix,
    discoveryPrefix: c.discovery.prefix,
    version: VERSION,
    actions: c.actions,
  });
};
const msgs = build(
  'host: nas-1\nactions:\n  cancel: { argv: ["true"], button: true }\n  current_run: { argv: ["true"] }\n',
);
const find = (component: string, object: string) =>
  msgs.find((m) => m.topic === `homeassistant/${component}/nas-1/${object}/config`)?.payload;
const button = find('button', 'cancel')!;
const sensor = find('sensor', 'current_run')!;

/** HA's recorder stores `{}` for attributes over 16 KB; a state over 255 characters is refused. */
const HA_MAX_ATTRIBUTES_BYTES = 16_384;
const HA_MAX_STATE = 255;

const NOW = Date.parse('2026-12-07T10:00:00.000Z');
const run = (over: Partial<RunView> = {}): RunView => ({
  id: 'r1',
  action: 'apply_updates',
  startedAt: NOW - 65_500,
  steps: 3,
  step: 2,
  line: 'Unpacking libc6 ...',
  ...over,
});

describe('the running state (P/H/running)', () => {
  it('idle: every field null, the label "idle"', () => {
    const s = runningState('nas-1', [], NOW);
    expect(runningStateSchema.parse(s)).toEqual(s);
    expect(s).toMatchObject({ label: IDLE, running: 0, id: null, action: null, elapsed_s: null });
  });

  it('describes the oldest run: its step k/n, last line and elapsed seconds; the count of all', () => {
    const s = runningState('nas-1', [run(), run({ id: 'r2', action: 'backup', startedAt: NOW })], NOW);
    expect(s).toEqual({
      host: 'nas-1',
      label: 'apply_updates (step 2/3)',
      running: 2,
      id: 'r1',
      action: 'apply_updates',
      step: 2,
      steps: 3,
      line: 'Unpacking libc6 ...',
      started_at: '2026-12-07T09:58:54.500Z',
      elapsed_s: 65,
    });
  });

  it('a one-command action has no step', () => {
    const s = runningState('nas-1', [run({ steps: 1, step: 1 })], NOW);
    expect(s).toMatchObject({ label: 'apply_updates', step: null, steps: null });
  });

  it.each([
    ['the last non-blank line', 'a\nb\n\n', 'b'],
    ["apt's \\r progress redraws", 'Progress: [ 10%]\rProgress: [ 42%]\r', 'Progress: [ 42%]'],
    ['terminal colours removed', '\u001b[1;32mok\u001b[0m done\n', 'ok done'],
    ['control characters as spaces', 'x\u0007y\n', 'x y'],
    ['a chunk of blank lines keeps the previous line', '\n\n', 'before'],
  ])('lastLine: %s', (_l, chunk, want) => {
    expect(lastLine('before', chunk)).toBe(want);
  });

  it(`lastLine cuts to ${RUNNING_LINE_MAX} characters, never inside one`, () => {
    const line = lastLine(undefined, '😀'.repeat(1000));
    expect([...(line ?? '')]).toHaveLength(RUNNING_LINE_MAX);
    expect(line).not.toMatch(/\uFFFD/);
  });
});

describe('the Cancel button', () => {
  it('exists with the Running sensor only on a host with actions, apart from actions named like them', () => {
    expect(build('host: empty\n').filter((m) => /\/(cancel|current_run)\//.test(m.topic))).toEqual([]);
    // The actions "cancel" and "current_run" keep their own objects (run_cancel, stats_current_run).
    expect(find('button', 'run_cancel')).toBeDefined();
    expect(find('sensor', 'stats_current_run')).toBeDefined();
    const ids = msgs.map((m) => m.payload.unique_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(button).toMatchObject({
      name: 'Cancel',
      unique_id: 'homelab_cmd_nas-1_cancel',
      default_entity_id: 'button.nas_1_cancel',
      command_topic: 'homelab/nas-1/cmd',
      payload_press: 'PRESS',
      retain: false,
    });
  });

  it('sends a stamped cancel of the oldest run that the agent parses, and that expires after its ttl', () => {
    const pressedAt = 1_765_090_800_123;
    const wire = renderCommandTemplate(String(button.command_template), { value: 'PRESS', nowMs: pressedAt });
    expect(wire).toBe(`{"cancel": "${CANCEL_OLDEST}", "ts": ${pressedAt}, "ttl": ${CANCEL_TTL_S}}`);
    const parsed = parseDelivery(
      { topicAction: undefined, payload: Buffer.from(wire), retained: false },
      pressedAt + 500,
      () => 'gen-1',
    );
    expect(parsed.ok && parsed.request.cancel).toBe(CANCEL_OLDEST);
    const req = parsed.ok ? parsed.request : undefined;
    expect(req && staleness(req, pressedAt + 500, 300_000)).toBeUndefined();
    expect(req && staleness(req, pressedAt + CANCEL_TTL_S * 1000 + 1000, 300_000)?.code).toBe('expired');
    expect(CANCEL_COMMAND_TEMPLATE).toContain('as_timestamp(now())');
  });

  it('is available only while the host is online and something runs (availability_mode all)', () => {
    expect(button).not.toHaveProperty('availability_topic');
    expect(button.availability_mode).toBe('all');
    const [status, running] = button.availability as Record<string, string>[];
    expect(status).toEqual({
      topic: 'homelab/nas-1/status',
      payload_available: 'online',
      payload_not_available: 'offline',
    });
    expect(running).toMatchObject({ topic: 'homelab/nas-1/running', payload_available: 'online' });
  });

  it.skipIf(!haveJinja)(
    'its availability template reads online while a run is shown, offline when idle',
    () => {
      const [, running] = button.availability as Record<string, string>[];
      const out = renderTemplates(
        [running!.value_template!],
        [runningState('nas-1', [run()], NOW), runningState('nas-1', [], NOW)],
      );
      expect(out).toEqual([['online'], ['offline']]);
    },
  );
});

describe.skipIf(!haveJinja)('the Running sensor within HA limits', () => {
  it('state and attributes of the worst case: a 63-character action, a 200-character line of emoji', () => {
    const worst = runningState(
      'h'.repeat(63),
      [
        run({
          id: 'i'.repeat(64),
          action: 'a'.repeat(63),
          steps: 1_000_000,
          step: 999_999,
          line: '😀'.repeat(200),
        }),
      ],
      NOW,
    );
    expect(runningStateSchema.parse(worst)).toEqual(worst);
    const [[state, attrs]] = renderTemplates(
      [String(sensor.value_template), String(sensor.json_attributes_template)],
      [worst],
    ) as [[string, string]];
    expect(state.length).toBeLessThanOrEqual(HA_MAX_STATE);
    expect(state).toBe(`${'a'.repeat(63)} (step 999999/1000000)`);
    const parsed = JSON.parse(attrs) as Record<string, unknown>;
    expect(parsed).not.toHaveProperty('state');
    expect(parsed).toMatchObject({ id: 'i'.repeat(64), step: 999_999, elapsed_s: 65 });
    expect(Buffer.byteLength(JSON.stringify(parsed))).toBeLessThan(HA_MAX_ATTRIBUTES_BYTES / 10);
  });

  it('idle reads "idle" with null attributes', () => {
    const [[state, attrs]] = renderTemplates(
      [String(sensor.value_template), String(sensor.json_attributes_template)],
      [runningState('nas-1', [], NOW)],
    ) as [[string, string]];
    expect(state).toBe('idle');
    expect(JSON.parse(attrs)).toMatchObject({ id: null, action: null, running: 0 });
  });

  it('its topics are the host’s', () => {
    const t = hostTopics('homelab', 'nas-1');
    expect(runningEntities(t, true)[0]!.body).toMatchObject({
      state_topic: t.running,
      json_attributes_topic: t.running,
    });
    expect(sensor.availability_topic).toBe(t.status);
  });
});
