/** `mqtt.url` as one URL or a failover list: validation, and what the CLI makes of it and of a repeated --url. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { targetFrom } from '../../src/cli/send.js';
import { type ConfigIssue } from '../../src/errors.js';
import { configIssues } from '../helpers/config-issues.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'homelab-cmd-urls-'));
const SOURCE = path.join(dir, 'agent.yaml');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const issuesOf = (yaml: string): ConfigIssue[] => configIssues(yaml, SOURCE);

describe('mqtt.url', () => {
  it("one URL stays a string (the contract's form); a list keeps its order", () => {
    expect(parseConfig('mqtt: { url: "mqtts://b1:8883" }', SOURCE, {}).mqtt.url).toBe('mqtts://b1:8883');
    expect(
      parseConfig('mqtt:\n  url:\n    - mqtt://b2:1883\n    - mqtts://b1:8883\n', SOURCE, {}).mqtt.url,
    ).toEqual(['mqtt://b2:1883', 'mqtts://b1:8883']);
  });

  it.each<[string, string, string, string | RegExp]>([
    [
      'a bad URL in the list names its index',
      'mqtt: { url: ["mqtt://ok:1883", "http://broker"] }',
      'mqtt.url.1',
      'must be a URL like mqtt://host:1883 or mqtts://host:8883',
    ],
    ['an empty list', 'mqtt: { url: [] }', 'mqtt.url', /list at least one broker URL/],
    [
      'the same URL twice',
      'mqtt: { url: ["mqtt://a:1883", "mqtt://a:1883"] }',
      'mqtt.url',
      /lists the same URL twice — give each broker once/,
    ],
    [
      'neither a string nor a list',
      'mqtt: { url: 1883 }',
      'mqtt.url',
      'give one URL (mqtt://host:1883) or a list of URLs, tried in order',
    ],
  ])('%s', (_name, yaml, keyPath, message) => {
    const issues = issuesOf(yaml);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe(keyPath);
    if (typeof message === 'string') expect(issues[0]!.message).toBe(message);
    else expect(issues[0]!.message).toMatch(message);
  });
});

describe('the CLI target', () => {
  const config = path.join(dir, 'cli.yaml');
  writeFileSync(config, 'mqtt:\n  url: [mqtt://b1:1883, mqtt://b2:1883]\n  prefix: lab\n');

  it('a repeated --url is the list, in order, and wins over the config', () => {
    expect(targetFrom({ url: ['mqtt://x:1', 'mqtt://y:2'], config }).url).toEqual([
      'mqtt://x:1',
      'mqtt://y:2',
    ]);
  });

  it("without --url, the config's list; without either, the contract's default", () => {
    expect(targetFrom({ config })).toMatchObject({
      url: ['mqtt://b1:1883', 'mqtt://b2:1883'],
      prefix: 'lab',
    });
    // (No `up` running for this user: a runtime dir of its own, empty.)
    expect(targetFrom({}, { XDG_RUNTIME_DIR: mkdtempSync(path.join(os.tmpdir(), 'hc-run-')) }).url).toBe(
      'mqtt://127.0.0.1:1883',
    );
  });
});
