/** The docs cannot drift from the code: every config key, topic and error code must be documented. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const read = (f: string) => readFileSync(path.join(REPO, f), 'utf8');

type Json = {
  type?: string | string[];
  properties?: Record<string, Json>;
  additionalProperties?: Json | boolean;
  items?: Json;
  anyOf?: Json[];
  oneOf?: Json[];
  allOf?: Json[];
};

/** Every key path of the config schema, in the docs' spelling for collections. */
function keyPaths(schema: Json, prefix: string, out: Set<string>): Set<string> {
  const variants = [schema, ...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])];
  for (const s of variants) {
    for (const [key, child] of Object.entries(s.properties ?? {})) {
      const p = prefix ? `${prefix}.${key}` : key;
      out.add(p);
      keyPaths(child, p, out);
    }
    if (typeof s.additionalProperties === 'object') {
      const name =
        prefix === 'actions' || prefix === 'probes' || prefix === 'switches'
          ? '<name>'
          : prefix.endsWith('.params')
            ? '<param>'
            : undefined;
      // env values are free-form strings: `actions.<name>.env` documents them as a whole.
      if (name) keyPaths(s.additionalProperties, `${prefix}.${name}`, out);
    }
    if (s.items) keyPaths(s.items, `${prefix}[]`, out);
  }
  return out;
}

describe('docs/configuration.md', () => {
  const doc = read('docs/configuration.md');
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Json;
  const paths = [...keyPaths(schema, '', new Set())].sort();

  it('the schema walk finds the keys we know exist (the walk itself works)', () => {
    expect(paths).toEqual(
      expect.arrayContaining([
        'mqtt.keepalive',
        'execution.shutdown_grace',
        'actions.<name>.argv',
        'actions.<name>.params.<param>.pattern',
        'actions.<name>.stagger.interval',
        'broker.users[].role',
      ]),
    );
    expect(paths.length).toBeGreaterThan(50);
  });

  it.each(paths)('documents `%s`', (key) => {
    expect(doc).toContain(`\`${key}\``);
  });
});

describe('docs/mqtt-api.md', () => {
  const doc = read('docs/mqtt-api.md');
  // The contract's error codes (docs/mqtt-api.md § Error codes), in its order.
  const codes = [
    'invalid_request',
    'unknown_action',
    'invalid_params',
    'not_whitelisted',
    'execution_disabled',
    'busy',
    'expired',
    'bad_signature',
    'replayed',
    'retained_ignored',
    'timeout',
    'not_found',
    'sudo_failed',
    'denied',
    'exit_nonzero',
    'interrupted',
    'shutting_down',
  ];

  it.each(codes)('documents error code `%s`', (code) => {
    expect(doc).toContain(`\`${code}\``);
  });

  it.each([
    'P/H/cmd/ACTION',
    'P/H/cmd',
    'P/H/result/ID',
    'P/H/result',
    'P/H/status',
    'P/H/heartbeat',
    'P/H/output/ID',
    'P/H/param/ACTION/PARAM',
    'P/_fleet/stagger/GROUP',
    'P/H/probe/NAME',
    'P/H/switch/NAME',
  ])('documents topic %s', (topic) => {
    expect(doc).toContain(topic);
  });

  it.each(['action_id', 'action_type', 'parameters', 'timeout_seconds', 'transaction', 'ttl'])(
    'documents request field %s',
    (f) => {
      expect(doc).toContain(`\`${f}\``);
    },
  );
});
