/**
 * Home Assistant's templates rendered by the real Jinja (python3-jinja2, HA's own engine), in its
 * sandbox, with `value_json` = each value — for value, attribute and availability templates.
 */
import { spawnSync } from 'node:child_process';

/**
 * The python3 on PATH that has jinja2, resolved once to its executable. Why: a version manager's shim
 * (pyenv's, on the CI image) runs about 20 processes for each call, half a CPU-second; the interpreter
 * alone takes a twentieth of that. The tests render through it dozens of times.
 */
export const JINJA_PYTHON: string | undefined = (() => {
  const r = spawnSync('python3', ['-c', 'import sys, jinja2; print(sys.executable)'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
})();

export const haveJinja = JINJA_PYTHON !== undefined;

/** Runs a Python script (it imports jinja2) with the JSON of `input` on stdin; returns its stdout parsed as JSON. */
export function runJinja<T>(script: string, input: unknown): T {
  if (!JINJA_PYTHON) throw new Error('rendering needs python3 with jinja2: apt-get install python3-jinja2');
  const r = spawnSync(JINJA_PYTHON, ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** One row per value: each template rendered with it. */
export function renderTemplates(templates: string[], values: unknown[]): string[][] {
  const script = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
data = json.load(sys.stdin)
print(json.dumps([[env.from_string(t).render(value_json=v) for t in data["templates"]] for v in data["values"]]))
`;
  return runJinja<string[][]>(script, { templates, values });
}
