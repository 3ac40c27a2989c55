/**
 * Issue 20 items 3-4 through a real Mosquitto: `homelab-cmd cancel` and Home Assistant's Cancel button
 * stop a long-running action (its process group gone from /proc), the result is `cancelled`, the CLI
 * exits 0, and the Running sensor's state follows the run — with the entities' discovery as HA reads it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import { resultSchema } from '../../src/core/formats.js';
import { isFinal, type Result } from '../../src/core/result.js';
import { runningStateSchema, type RunningState } from '../../src/core/running.js';
import { runCli, startAgent } from '../helpers/agent.js';
import { fakeBin, isDead, tempDir, testPath } from '../helpers/fixtures.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { haveJinja, renderTemplates } from '../helpers/jinja.js';
import { MOSQUITTO, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';
import { TestClient, type Msg } from '../helpers/mqtt.js';
import { until } from '../helpers/wait.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'cancel through Mosquitto');

const HOST = 'cm-host';
const P = `homelab/${HOST}`;
let broker: MosquittoProcess;
let agent: Agent;
let ctl: TestClient;
let dir: string;

const asResult = (m: Msg): Result => resultSchema.parse(JSON.parse(m.text));
const asRunning = (m: Msg): RunningState => runningStateSchema.parse(JSON.parse(m.text));
const pidsOf = (t: string) =>
  readFileSync(path.join(dir, `pids.${t}`), 'utf8')
    .trim()
    .split(' ')
    .map(Number);

/** Starts `long TAG` as request `id` and waits until its processes exist. */
async function startLong(id: string, t: string): Promise<number[]> {
  await ctl.pub(`${P}/cmd/long`, JSON.stringify({ id, params: { tag: t } }));
  await until(() => existsSync(path.join(dir, `pids.${t}`)), 10_000, `request ${id} to start`);
  return pidsOf(t);
}

const finalOf = (id: string) =>
  ctl
    .wait(
      (m) => m.topic === `${P}/result/${id}` && m.text !== '' && isFinal(asResult(m).status),
      30_000,
      `the final result of ${id}`,
    )
    .then(asResult);

const runningShows = (id: string | null, also: (s: RunningState) => boolean = () => true) =>
  ctl.wait(
    (m) => m.topic === `${P}/running` && m.text !== '' && asRunning(m).id === id && also(asRunning(m)),
    15_000,
    `P/H/running naming ${id ?? 'nothing'}`,
  );

describe.skipIf(!MOSQUITTO)('cancel through Mosquitto', () => {
  beforeAll(async () => {
    broker = await startMosquitto();
    dir = tempDir();
    fakeBin(
      dir,
      'longjob',
      `sleep 300 &\n# Written whole, then renamed: the test waits for the file and reads both pids at once.\necho "$$ $!" > "${dir}/.pids.$1" && mv "${dir}/.pids.$1" "${dir}/pids.$1"\necho "working on $1"\nwait`,
    );
    ctl = await TestClient.connect(broker.url);
    await ctl.sub(`${P}/result/#`, `${P}/running`, `homeassistant/+/${HOST}/#`);
    ({ agent } = await startAgent({
      host: HOST,
      state_dir: `${dir}/state`,
      mqtt: { url: broker.url },
      execution: { enabled: true, path: testPath(`${dir}/bin`) },
      actions: {
        long: {
          steps: [
            ['echo', 'preparing'],
            ['longjob', '{tag}'],
          ],
          params: { tag: { type: 'string', pattern: '^t[0-9]$' } },
        },
      },
    }));
  });
  afterAll(async () => {
    await agent?.stop();
    await ctl?.end();
    await broker?.stop();
  });

  it('homelab-cmd cancel kills the process group; the result is cancelled and the CLI exits 0', async () => {
    const pids = await startLong('run-1', 't1');
    // The Running sensor names it once it has run for a moment: step 2 of 2, its last line.
    const shown = asRunning(await runningShows('run-1', (s) => s.step === 2));
    expect(shown).toMatchObject({ action: 'long', step: 2, steps: 2, label: 'long (step 2/2)', running: 1 });
    await until(
      () => ctl.messages.some((m) => m.topic === `${P}/running` && m.text.includes('"line":"working on t1"')),
      15_000,
      'the last output line on P/H/running',
    );

    const r = await runCli(['cancel', HOST, 'run-1', '--url', broker.url, '--wait', '30']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const printed = resultSchema.parse(JSON.parse(r.stdout));
    expect(printed).toMatchObject({
      id: 'run-1',
      status: 'cancelled',
      error_code: 'cancelled',
      exit_code: -1,
    });
    expect((await finalOf('run-1')).status).toBe('cancelled');
    await until(() => pids.every(isDead), 10_000, 'the command and its grandchild to be gone');
    // Nothing runs: the sensor says idle again, and the Cancel button's availability goes off.
    expect(asRunning(await runningShows(null)).label).toBe('idle');
  });

  it("Home Assistant's Cancel button, as HA renders and sends it, stops the oldest run", async () => {
    const button = await ctl.wait(
      (m) => m.topic === `homeassistant/button/${HOST}/cancel/config` && m.text !== '',
      10_000,
      'the Cancel button discovery',
    );
    const config = JSON.parse(button.text) as Record<string, unknown>;
    expect(config.command_topic).toBe(`${P}/cmd`);
    const sensor = await ctl.wait(
      (m) => m.topic === `homeassistant/sensor/${HOST}/current_run/config` && m.text !== '',
      10_000,
      'the Running sensor discovery',
    );
    expect(JSON.parse(sensor.text)).toMatchObject({ state_topic: `${P}/running`, name: 'Running' });

    const pids = await startLong('run-2', 't2');
    const state = await runningShows('run-2');
    if (haveJinja) {
      // HA evaluates the button's second availability entry on this very message.
      const [, running] = config.availability as { value_template: string }[];
      expect(renderTemplates([running!.value_template], [JSON.parse(state.text)])).toEqual([['online']]);
    }
    const wire = renderCommandTemplate(String(config.command_template), {
      value: String(config.payload_press),
      nowMs: Date.now(),
    });
    await ctl.pub(String(config.command_topic), wire);
    const r = await finalOf('run-2');
    expect(r).toMatchObject({ status: 'cancelled', error_code: 'cancelled' });
    expect(r.error).toMatch(/cancelled by request .*: the command was killed/);
    await until(() => pids.every(isDead), 10_000, 'the pressed-away run to be gone');
    await runningShows(null);
  });

  it('the CLI: nothing to cancel is exit 1 with the answer; an unknown host is exit 2, nothing sent', async () => {
    const none = await runCli(['cancel', HOST, 'no-such-id', '--url', broker.url]);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stdout)).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    expect(none.stderr).toMatch(/nothing cancelled — no request no-such-id on cm-host/);
    const typo = await runCli(['cancel', 'cm-hots', 'x', '--url', broker.url]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/did you mean cm-host/);
    const usage = await runCli(['cancel', HOST, '-bad-', '--url', broker.url]);
    expect(usage.code).toBe(2);
  });
});
