/** The v2 canonical form, checked against docs/security.md's worked example (§ Signed requests). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalString, sign, verify, type SignedFields } from '../../src/core/signing.js';
import { signedFields } from '../../src/cli/request-spec.js';
import { REPO } from '../helpers/fixtures.js';

const doc = readFileSync(path.join(REPO, 'docs/security.md'), 'utf8');
const section = doc.slice(doc.indexOf('### The canonical string'), doc.indexOf('### Replays'));
const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)\n```/g)].map((m) => m[2]!);

describe("docs/security.md's worked example", () => {
  const key = /the key `([^`]+)`/.exec(section)![1]!;
  const request = JSON.parse(blocks[0]!) as Record<string, unknown>;
  const canonical = blocks[1]!;
  const fields: SignedFields = {
    ...signedFields(
      'pihole-1',
      { ...request, action: 'restart_service' },
      {
        responseTopic: /Response Topic\s+`([^`]+)`/.exec(section)![1]!,
        correlationData: Buffer.from([1, 2]),
      },
    ),
  };

  it('the canonical string is the one shown', () => {
    expect(canonicalString(fields)).toBe(canonical);
  });

  it('the signature is the one shown, and verifies', () => {
    expect(sign(key, fields)).toBe(request.sig);
    expect(verify(key, fields, request.sig as string)).toBe('ok');
    expect(section).toContain(`\`${String(request.sig)}\``);
  });
});

describe('canonicalString', () => {
  const base: SignedFields = { host: 'h', action: 'a', id: 'i', ts: 1 };
  it('tells a missing field from an empty one', () => {
    const forms = [
      base,
      { ...base, transaction: '' },
      { ...base, params: {} },
      { ...base, command: '' },
      { ...base, responseTopic: '' },
      { ...base, responseTopic: '', correlationData: new Uint8Array() },
      { ...base, cancel: '' },
    ].map(canonicalString);
    // params absent and {} are the same request (the agent reads both as no params).
    expect(forms[0]).toBe(forms[2]);
    expect(new Set(forms).size).toBe(forms.length - 1);
  });

  it('keeps every value in its field: a newline or quote in one cannot forge another', () => {
    const sneaky = canonicalString({ ...base, transaction: 'x","ttl":9999,"y":"' });
    expect(JSON.parse(sneaky.split('\n')[1]!)).toMatchObject({
      ttl: null,
      transaction: 'x","ttl":9999,"y":"',
    });
    expect(canonicalString({ ...base, transaction: 'a\nb' }).split('\n')).toHaveLength(2);
  });
});
