/**
 * The chaos lane (`npm run test:chaos`, docs/operations.md § Chaos run): a seeded, time-bounded run
 * per broker, invariants checked id by id at the end. CHAOS_SEED replays a schedule; CHAOS_SECONDS
 * (default 20 per broker) or CHAOS_MINUTES (the soak) sets how long faults go on.
 */
import { describe, expect, it } from 'vitest';
import { MOSQUITTO, reportMissing } from '../helpers/mosquitto.js';
import { judge } from './check.js';
import { chaosRun } from './run.js';

const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
const seconds = process.env.CHAOS_MINUTES
  ? Number(process.env.CHAOS_MINUTES) * 60
  : Number(process.env.CHAOS_SECONDS ?? 20);
if (!MOSQUITTO) reportMissing('mosquitto', 'the chaos run on Mosquitto');

// CHAOS_BROKER=mosquitto or embedded runs only that one (the soak). The two runs share nothing (own
// ports, directories, processes), so they run at once: the lane stays under 2 minutes.
const only = process.env.CHAOS_BROKER;
describe.concurrent.each([
  ['mosquitto', !MOSQUITTO || (only !== undefined && only !== 'mosquitto')],
  ['embedded', only !== undefined && only !== 'embedded'],
] as const)('chaos on %s', (broker, skip) => {
  it.skipIf(skip)(
    `seed ${seed}: at most one run, one unchanging final per id, nothing acknowledged lost, SIGKILLed commands interrupted and stopped`,
    async () => {
      const t0 = Date.now();
      const rec = await chaosRun({ seed, broker, seconds });
      const { verdicts, table } = judge(rec);
      const lines = [`\nchaos run — replay with CHAOS_SEED=${seed}`, table];
      for (const v of verdicts)
        lines.push(
          `  ${v.ids.length === 0 ? 'HELD  ' : 'FAILED'} ${v.name}${v.ids.length ? ` (${v.ids.length} ids)` : ''}`,
          ...v.detail.map((d) => `           ${d}`),
        );
      lines.push(
        `  faults: ${rec.faults.join(', ')}`,
        `  took ${Math.round((Date.now() - t0) / 1000)} s`,
        '',
      );
      process.stderr.write(lines.join('\n') + '\n');
      const broken = verdicts.filter((v) => v.ids.length > 0);
      expect(
        broken.map((v) => `${v.name}: ${v.ids.join(' ')}`),
        `CHAOS_SEED=${seed}`,
      ).toEqual([]);
    },
    (seconds + 420) * 1000,
  );
});
