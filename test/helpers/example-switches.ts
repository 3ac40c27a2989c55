/**
 * config/agent.example.yaml as a user who wants its switches and command probes would edit it: every
 * commented entry after "Real maintenance actions" uncommented (as the docs tour does), and the
 * top-level `# switches:` block too; without the broker section, whose cluster needs files of its own.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { REPO } from './fixtures.js';

export function exampleWithSwitches(): Record<string, Record<string, unknown>> {
  const example = readFileSync(path.join(REPO, 'config/agent.example.yaml'), 'utf8');
  const after = example.indexOf('\n', example.indexOf('# --- Real maintenance actions')) + 1;
  let text = example.slice(0, after) + example.slice(after).replace(/^ {2}# ?/gm, '  ');
  const start = text.indexOf('\n# switches:') + 1;
  const end = text.indexOf('\n\n', start);
  text = text.slice(0, start) + text.slice(start, end).replace(/^# ?/gm, '') + text.slice(end);
  const config = parse(text) as Record<string, Record<string, unknown>>;
  // Uncommented, broker.cluster would need its Redis password file: not what these tests are about.
  delete config.broker;
  return config;
}
