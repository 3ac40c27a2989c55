/**
 * Home Assistant's templates rendered by the real Jinja (python3-jinja2, HA's own engine), in its
 * sandbox, with `value_json` = each value — for value, attribute and availability templates.
 */
import { spawnSync } from 'node:child_process';

export const haveJinja = spawnSync('python3', ['-c', 'import jinja2'], { encoding: 'utf8' }).status === 0;

/** One row per value: each template rendered with it. */
export function renderTemplates(templates: string[], values: unknown[]): string[][] {
  const script = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
data = json.load(sys.stdin)
print(json.dumps([[env.from_string(t).render(value_json=v) for t in data["templates"]] for v in data["values"]]))
`;
  const r = spawnSync('python3', ['-c', script], {
    input: JSON.stringify({ templates, values }),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as string[][];
}
