/**
 * What runs on a host now, as Home Assistant's Running sensor shows it: `P/H/running`, retained
 * (docs/mqtt-api.md § Running). It describes the request that has run longest — the one the Cancel
 * button stops (`cancel: "@oldest"`, core/cancel.ts) — with its step, its last output line and how
 * long it has run. Pure: the clock comes from the caller.
 */
import { z } from 'zod';

/** Characters kept of the last output line: an attribute, well inside HA's limits. */
export const RUNNING_LINE_MAX = 200;
/** The sensor's state when nothing runs. */
export const IDLE = 'idle';

const count = z.number().int().nonnegative();

/** `P/H/running` (docs/mqtt-api.md § Running); keys in this order. */
export const runningStateSchema = z.strictObject({
  host: z.string(),
  /** The Running sensor's state: `idle`, `<action>`, or `<action> (step k/n)`; within HA's 255. */
  label: z.string().max(255),
  /** Requests running now; the fields below describe the oldest of them (null when none). */
  running: count,
  id: z.string().nullable(),
  action: z.string().nullable(),
  /** For an action with `steps`: the step that runs (from 1) and how many there are. */
  step: count.nullable(),
  steps: count.nullable(),
  /** Its last line of output (stdout or stderr), control characters removed. */
  line: z.string().max(RUNNING_LINE_MAX).nullable(),
  started_at: z.iso.datetime().nullable(),
  elapsed_s: count.nullable(),
});
export type RunningState = z.infer<typeof runningStateSchema>;

/** One run as the agent tracks it. */
export interface RunView {
  id: string;
  action: string;
  startedAt: number;
  steps: number;
  step: number | undefined;
  line: string | undefined;
}

/** The state for `runs` in the order they started (the first is the oldest). */
export function runningState(host: string, runs: readonly RunView[], now: number): RunningState {
  const oldest = runs[0];
  if (!oldest)
    return {
      host,
      label: IDLE,
      running: 0,
      id: null,
      action: null,
      step: null,
      steps: null,
      line: null,
      started_at: null,
      elapsed_s: null,
    };
  const stepped = oldest.steps > 1 && oldest.step !== undefined;
  return {
    host,
    label: stepped ? `${oldest.action} (step ${oldest.step}/${oldest.steps})` : oldest.action,
    running: runs.length,
    id: oldest.id,
    action: oldest.action,
    step: stepped ? (oldest.step ?? null) : null,
    steps: oldest.steps > 1 ? oldest.steps : null,
    line: oldest.line ?? null,
    started_at: new Date(oldest.startedAt).toISOString(),
    elapsed_s: Math.max(0, Math.floor((now - oldest.startedAt) / 1000)),
  };
}

/**
 * The last non-blank line of a chunk of output (apt redraws its progress with `\r`), without terminal
 * escapes or control characters, cut to RUNNING_LINE_MAX characters; `previous` when it has none.
 */
export function lastLine(previous: string | undefined, chunk: string): string | undefined {
  const lines = chunk
    // eslint-disable-next-line no-control-regex -- removing terminal escapes is the point
    .replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .split(/[\r\n]+/)
    // eslint-disable-next-line no-control-regex -- and any control character left
    .map((l) => l.replace(/[\u0000-\u001f\u007f]/g, ' ').trim())
    .filter((l) => l !== '');
  const last = lines.at(-1);
  if (last === undefined) return previous;
  return [...last].slice(0, RUNNING_LINE_MAX).join('');
}
