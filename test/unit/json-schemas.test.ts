/** docs/schema/*.json are what the code generates (`npm run schema`): a stale file fails here. */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jsonSchemaFiles } from '../../src/core/json-schemas.js';

const dir = new URL('../../docs/schema/', import.meta.url);

describe('docs/schema', () => {
  const files = jsonSchemaFiles();

  it('holds exactly the generated files', () => {
    expect(readdirSync(dir).sort()).toEqual(Object.keys(files).sort());
  });

  it.each(Object.keys(files))(
    '%s is what the code generates — run `npm run schema` after changing a format',
    (name) => {
      expect(readFileSync(new URL(name, dir), 'utf8')).toBe(files[name]);
    },
  );

  it('the result schema refuses a key the contract does not name, and requires the contract keys', () => {
    const result = JSON.parse(files['result.json'] ?? '{}') as {
      additionalProperties?: unknown;
      required?: string[];
    };
    expect(result.additionalProperties).toBe(false);
    expect(result.required).toEqual([
      'id',
      'host',
      'action',
      'status',
      'exit_code',
      'stdout',
      'stderr',
      'stdout_truncated',
      'stderr_truncated',
    ]);
  });
});
