import { describe, it, expect } from 'vitest';
import { fieldHint } from '../../src/core/request-fields.js';
import {
  MAX_PAYLOAD_BYTES,
  parseDelivery,
  type Delivery,
  type ParseOutcome,
  type Request,
} from '../../src/core/request.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const GEN = 'generated-0001';

function deliver(
  topicAction: string | undefined,
  payload: string | Uint8Array,
  retained = false,
): ParseOutcome {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const delivery: Delivery = { topicAction, payload: bytes, retained };
  return parseDelivery(delivery, NOW, () => GEN);
}

function accepted(outcome: ParseOutcome): Request {
  if (!outcome.ok)
    throw new Error(`expected acceptance, got ${outcome.rejection.code}: ${outcome.rejection.error}`);
  return outcome.request;
}

function rejection(outcome: ParseOutcome) {
  if (outcome.ok) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.request)}`);
  return outcome;
}

const json = (o: unknown): string => JSON.stringify(o);

describe('parseDelivery: presses on P/H/cmd/ACTION', () => {
  // docs/mqtt-api.md § Topics: "empty, any non-JSON text (HA's PRESS), or a request object".
  it.each([
    ['empty', ''],
    ['HA PRESS', 'PRESS'],
    ['other text', 'go!'],
    ['blanks only', '   \n\t'],
    ['text that merely contains a brace', 'press {now}'],
    ['a JSON array is not a request object', '[1,2]'],
  ])('%s is a press with a generated id and no params', (_label, payload) => {
    const req = accepted(deliver('restart_dns', payload));
    expect(req).toEqual({
      id: GEN,
      generatedId: true,
      press: true,
      action: 'restart_dns',
      params: {},
      command: undefined,
      timeoutMs: undefined,
      ts: undefined,
      ttl: undefined,
      sig: undefined,
      transaction: undefined,
    });
  });

  it('a non-JSON payload on P/H/cmd (no action) is invalid_request and says where to publish instead', () => {
    const r = rejection(deliver(undefined, 'PRESS'));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/JSON request naming "action" or "command"/);
    expect(r.rejection.error).toMatch(/cmd\/<action>/);
    expect(r.ref).toEqual({ id: GEN, action: null });
  });

  it.each(['Restart', 'has-dash', '_x', 'a'.repeat(64), 'a/b', ''])(
    'topic action %j that is not a valid action name → unknown_action',
    (name) => {
      const r = rejection(deliver(name, 'PRESS'));
      expect(r.rejection.code).toBe('unknown_action');
      expect(r.rejection.error).toContain('action names match');
      expect(r.ref.action).toBeNull();
    },
  );
});

describe('parseDelivery: request objects', () => {
  it('takes every canonical field', () => {
    const req = accepted(
      deliver(
        'restart_service',
        json({
          id: 'req-1',
          action: 'restart_service',
          params: { unit: 'nginx' },
          timeout: 12.5,
          ts: NOW - 1000,
          ttl: 60,
          sig: 'abc',
          transaction: 'tx-9',
        }),
      ),
    );
    expect(req).toEqual({
      id: 'req-1',
      generatedId: false,
      press: false,
      action: 'restart_service',
      params: { unit: 'nginx' },
      command: undefined,
      timeoutMs: 12_500,
      ts: NOW - 1000,
      ttl: 60,
      sig: 'abc',
      transaction: 'tx-9',
    });
  });

  it('an object without id gets the generated one, and is not a press', () => {
    const req = accepted(deliver('uptime', '{}'));
    expect(req.id).toBe(GEN);
    expect(req.generatedId).toBe(true);
    expect(req.press).toBe(false);
    expect(req.action).toBe('uptime');
  });

  it('leading blanks before "{" still make it a request object', () => {
    const req = accepted(deliver('uptime', ' \n\t {"id":"x1"}'));
    expect(req.id).toBe('x1');
  });

  it('on P/H/cmd the action comes from the payload', () => {
    expect(accepted(deliver(undefined, json({ action: 'uptime' }))).action).toBe('uptime');
  });

  it('a raw command on P/H/cmd needs no action', () => {
    const req = accepted(deliver(undefined, json({ command: 'systemctl restart nginx' })));
    expect(req.command).toBe('systemctl restart nginx');
    expect(req.action).toBeUndefined();
    expect(req.params).toEqual({});
  });

  it('a request on P/H/cmd/ACTION may repeat the same action', () => {
    expect(accepted(deliver('uptime', json({ action: 'uptime' }))).action).toBe('uptime');
  });

  it.each([
    ['numeric id', { id: 42 }, '42'],
    ['zero id', { id: 0 }, '0'],
    ['id with . _ : -', { id: 'a.b_c:d-e' }, 'a.b_c:d-e'],
    ['64-character id', { id: 'A'.repeat(64) }, 'A'.repeat(64)],
  ])('%s → id %j', (_label, body, id) => {
    const req = accepted(deliver('uptime', json(body)));
    expect(req.id).toBe(id);
    expect(req.generatedId).toBe(false);
  });
});

describe('parseDelivery: HomelabCmd aliases', () => {
  // docs/mqtt-api.md § HomelabCmd aliases: action_id→id, action_type→action, parameters→params, timeout_seconds→timeout.
  it('maps every alias, and a numeric action_id becomes its decimal string', () => {
    const req = accepted(
      deliver(
        undefined,
        json({
          action_id: 1234,
          action_type: 'restart_service',
          parameters: { unit: 'nginx' },
          timeout_seconds: 20,
        }),
      ),
    );
    expect(req.id).toBe('1234');
    expect(req.generatedId).toBe(false);
    expect(req.action).toBe('restart_service');
    expect(req.params).toEqual({ unit: 'nginx' });
    expect(req.timeoutMs).toBe(20_000);
  });

  it('a string action_id is kept as is', () => {
    expect(accepted(deliver('uptime', json({ action_id: 'hub-7' }))).id).toBe('hub-7');
  });

  it('alias and canonical name with the same value are accepted', () => {
    const req = accepted(
      deliver('uptime', json({ id: 'same', action_id: 'same', timeout: 5, timeout_seconds: 5 })),
    );
    expect(req.id).toBe('same');
    expect(req.timeoutMs).toBe(5_000);
  });

  it.each([
    ['id', { id: 'a1', action_id: 'b2' }, 'action_id', 'id'],
    ['action', { action: 'uptime', action_type: 'disk_usage' }, 'action_type', 'action'],
    ['params', { params: { a: '1' }, parameters: { a: '2' } }, 'parameters', 'params'],
    ['timeout', { timeout_seconds: 5, timeout: 6 }, 'timeout', 'timeout'],
  ])('conflicting %s and its alias → invalid_request naming both', (_label, body, first, second) => {
    const r = rejection(deliver(undefined, json(body)));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toContain(`"${first}"`);
    expect(r.rejection.error).toContain(`"${second}"`);
    expect(r.rejection.error).toMatch(/send one of them/);
  });
});

describe('parseDelivery: malformed payloads', () => {
  it.each([
    ['truncated object', '{"id": "x"'],
    ['single quotes', "{'id': 'x'}"],
    ['trailing comma', '{"id": "x",}'],
    ['garbage after', '{"id": "x"} trailing'],
    ['just a brace', '{'],
    ['leading blanks, then bad JSON', '   \n {PRESS'],
    ['leading tab, then bad JSON', '\t{nope}'],
  ])('%s → invalid_request that says to fix the JSON or send plain text', (_label, payload) => {
    const r = rejection(deliver('uptime', payload));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/starts with "\{" but is not valid JSON/);
    expect(r.rejection.error).toMatch(/fix the JSON, or send plain text to press/);
    expect(r.ref).toEqual({ id: GEN, action: 'uptime' });
  });

  it('bad JSON is rejected even when retained (nothing runs either way)', () => {
    expect(rejection(deliver('uptime', '{oops', true)).rejection.code).toBe('invalid_request');
  });

  it('a payload over 64 KiB is refused before it is parsed, whatever it holds', () => {
    // Valid JSON that would otherwise be a fine request: the size alone refuses it.
    const padded = `{"id":"big","transaction":"t","params":{"x":"${'a'.repeat(MAX_PAYLOAD_BYTES)}"}}`;
    const r = rejection(deliver('uptime', padded));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toContain(`${Buffer.byteLength(padded)} bytes`);
    expect(r.rejection.error).toMatch(/at most 65536 bytes — send params, not data/);
    // Not parsed: neither the id nor the transaction made it into the ref.
    expect(r.ref).toEqual({ id: GEN, action: 'uptime' });
  });

  it('a press over 64 KiB is refused too', () => {
    const r = rejection(deliver('uptime', 'P'.repeat(MAX_PAYLOAD_BYTES + 1)));
    expect(r.rejection.code).toBe('invalid_request');
  });

  it('exactly 64 KiB is still read', () => {
    const body = json({ id: 'edge', transaction: '' });
    const payload = body + ' '.repeat(MAX_PAYLOAD_BYTES - Buffer.byteLength(body));
    expect(Buffer.byteLength(payload)).toBe(MAX_PAYLOAD_BYTES);
    expect(accepted(deliver('uptime', payload)).id).toBe('edge');
  });

  it('reads only its own slice of a shared buffer', () => {
    const backing = Buffer.from('XXXX{"id":"slice-1"}YYYY');
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 4, backing.length - 8);
    expect(accepted(deliver('uptime', view)).id).toBe('slice-1');
  });
});

describe('parseDelivery: retained messages are never run', () => {
  // docs/mqtt-api.md § Retained messages and expiry: a retained command would re-run at every reconnect.
  it.each([
    ['press', 'uptime', 'PRESS'],
    ['empty press', 'uptime', ''],
    ['request object', 'uptime', json({ id: 'r-1', transaction: 'tx-r' })],
    ['request on P/H/cmd', undefined, json({ id: 'r-2', action: 'uptime' })],
    ['non-JSON on P/H/cmd', undefined, 'PRESS'],
  ])('%s → retained_ignored, saying how to clear it', (_label, topicAction, payload) => {
    const r = rejection(deliver(topicAction, payload, true));
    expect(r.rejection.code).toBe('retained_ignored');
    expect(r.rejection.error).toMatch(/publish without the retain flag/);
    expect(r.rejection.error).toMatch(/empty retained payload/);
  });

  it('the rejection of a retained request object keeps its id and transaction', () => {
    const r = rejection(deliver('uptime', json({ id: 'r-1', transaction: 'tx-r' }), true));
    expect(r.ref).toEqual({ id: 'r-1', action: 'uptime', transaction: 'tx-r' });
  });
});

describe('parseDelivery: ts and ttl', () => {
  it.each([
    ['fresh', NOW - 5_000, 10],
    ['exactly at the edge', NOW - 10_000, 10],
    ['from the future', NOW + 60_000, 1],
    ['fractional ttl', NOW - 500, 0.75],
  ])('%s is accepted', (_label, ts, ttl) => {
    const req = accepted(deliver('uptime', json({ ts, ttl })));
    expect(req.ts).toBe(ts);
    expect(req.ttl).toBe(ttl);
  });

  it.each([
    ['one ms late', NOW - 10_001, 10, 0],
    ['a minute late', NOW - 70_000, 10, 60],
  ])('%s → expired, saying by how much and what to check', (_label, ts, ttl, late) => {
    const r = rejection(deliver('uptime', json({ id: 'late-1', ts, ttl, transaction: 'tx-late' })));
    expect(r.rejection.code).toBe('expired');
    expect(r.rejection.error).toContain(`expired ${late} s ago`);
    expect(r.rejection.error).toMatch(/send it again, or check the sender's clock/);
    expect(r.ref).toEqual({ id: 'late-1', action: 'uptime', transaction: 'tx-late' });
  });

  it('ts alone is accepted (nothing to expire against)', () => {
    expect(accepted(deliver('uptime', json({ ts: 1 }))).ts).toBe(1);
  });

  it('ttl without ts → invalid_request that says ttl needs ts', () => {
    const r = rejection(deliver('uptime', json({ ttl: 30 })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/"ttl" needs "ts"/);
  });

  it.each([
    ['negative ts', { ts: -1, ttl: 5 }, 'ts'],
    ['fractional ts', { ts: 1.5 }, 'ts'],
    ['zero ttl', { ts: NOW, ttl: 0 }, 'ttl'],
    ['string ttl', { ts: NOW, ttl: '30' }, 'ttl'],
    ['an ISO date as ts', { ts: '2026-12-07T12:00:00Z' }, 'ts'],
  ])('%s → invalid_request naming the field, its unit and form', (_label, body, field) => {
    const r = rejection(deliver('uptime', json(body)));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error.startsWith(`"${field}" `)).toBe(true);
    expect(r.rejection.error).toMatch(
      field === 'ts'
        ? /— ts is the sender's time in milliseconds since the epoch, an integer .*§ The request object\)$/
        : /— ttl is seconds after ts as a number > 0 \(docs\/mqtt-api\.md § The request object\)$/,
    );
  });

  it('params of the wrong shape says what params is', () => {
    const r = rejection(deliver('uptime', json({ params: [1] })));
    expect(r.rejection.error).toMatch(/^"params" .* — params is an object of param names to values/);
  });
});

describe('parseDelivery: transaction echo', () => {
  // The zigbee2mqtt convention: the sender finds its answer by the transaction, also on rejections.
  it('is carried on an accepted request', () => {
    expect(accepted(deliver('uptime', json({ transaction: 'node-red-42' }))).transaction).toBe('node-red-42');
  });

  it.each([
    ['action mismatch', 'uptime', { id: 'm1', action: 'disk_usage', transaction: 'tx' }, 'invalid_request'],
    ['unknown field', 'uptime', { id: 'm2', bogus: true, transaction: 'tx' }, 'invalid_request'],
    ['bad params type', 'uptime', { id: 'm3', params: [], transaction: 'tx' }, 'invalid_request'],
    ['alias conflict', 'uptime', { id: 'm4', action_id: 'other', transaction: 'tx' }, 'invalid_request'],
    ['no action on P/H/cmd', undefined, { id: 'm5', transaction: 'tx' }, 'invalid_request'],
    [
      'command and params',
      undefined,
      { id: 'm6', command: 'uptime', params: {}, transaction: 'tx' },
      'invalid_request',
    ],
    ['bad action name', undefined, { id: 'm7', action: 'Bad', transaction: 'tx' }, 'unknown_action'],
    ['expired', 'uptime', { id: 'm8', ts: 0, ttl: 1, transaction: 'tx' }, 'expired'],
  ])('is echoed on a rejection: %s', (_label, topicAction, body, code) => {
    const r = rejection(deliver(topicAction, json(body)));
    expect(r.rejection.code).toBe(code);
    expect(r.ref.transaction).toBe('tx');
    expect(r.ref.id).toBe(body.id);
  });

  it('a bad id falls back to the generated one but keeps the transaction', () => {
    const r = rejection(deliver('uptime', json({ id: 'has space', transaction: 'tx-id' })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.ref).toEqual({ id: GEN, action: 'uptime', transaction: 'tx-id' });
  });

  it('a transaction over 64 characters is refused and not echoed', () => {
    const r = rejection(deliver('uptime', json({ transaction: 't'.repeat(65) })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error.startsWith('"transaction" ')).toBe(true);
    expect(r.ref.transaction).toBeUndefined();
  });

  it('64 characters are fine', () => {
    expect(accepted(deliver('uptime', json({ transaction: 't'.repeat(64) }))).transaction).toHaveLength(64);
  });
});

describe('parseDelivery: action and topic', () => {
  it('an action that differs from the topic → invalid_request naming both', () => {
    const r = rejection(deliver('uptime', json({ action: 'disk_usage' })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toContain('"disk_usage"');
    expect(r.rejection.error).toContain('"uptime"');
    expect(r.rejection.error).toMatch(/make them agree or drop "action"/);
  });

  it('an action_type alias that differs from the topic is refused the same way', () => {
    expect(rejection(deliver('uptime', json({ action_type: 'disk_usage' }))).rejection.error).toMatch(
      /make them agree/,
    );
  });

  it.each(['Uptime', 'up-time', '', 'a'.repeat(64), '../x'])(
    'an invalid action name %j in the payload → unknown_action',
    (action) => {
      const r = rejection(deliver(undefined, json({ action })));
      expect(r.rejection.code).toBe('unknown_action');
      expect(r.rejection.error).toContain('action names match');
    },
  );

  it.each([
    ['empty object', {}],
    ['params only', { params: { unit: 'nginx' } }],
    ['id only', { id: 'x' }],
  ])('no action on P/H/cmd (%s) → invalid_request that says what to name', (_label, body) => {
    const r = rejection(deliver(undefined, json(body)));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(
      /name an "action" \(or send a raw "command", or publish to cmd\/<action>\)/,
    );
  });
});

describe('parseDelivery: field validation', () => {
  it.each([
    ['space', 'has space'],
    ['leading dot', '.x'],
    ['leading dash', '-x'],
    ['slash', 'a/b'],
    ['wildcard', 'a+b'],
    ['65 characters', 'a'.repeat(65)],
    ['empty', ''],
    ['non-ASCII', 'idé'],
  ])('a bad id (%s) → invalid_request citing the id pattern', (_label, id) => {
    const r = rejection(deliver('uptime', json({ id })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/^"id" must match/);
    expect(r.rejection.error).toMatch(/letters, digits, \. _ : -; up to 64/);
    expect(r.ref.id).toBe(GEN);
  });

  it.each([
    ['fraction', 1.5],
    ['unsafe integer', 2 ** 60],
  ])('a numeric id that is a %s → invalid_request asking for a string id', (_label, id) => {
    const r = rejection(deliver('uptime', json({ id })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/use a string id/);
  });

  it('a negative numeric id fails the id pattern', () => {
    expect(rejection(deliver('uptime', json({ action_id: -3 }))).rejection.error).toMatch(/^"id" must match/);
  });

  it.each([
    ['one unknown field', { foo: 1 }, ['foo']],
    ['several unknown fields', { foo: 1, bar: 2 }, ['foo', 'bar']],
    ['a near miss', { param: { a: 1 } }, ['param']],
    ['an inherited property name', { constructor: 1 }, ['constructor']],
    ['another inherited property name', { toString: 'x' }, ['toString']],
  ])('%s → invalid_request naming them and listing the known fields', (_label, body, names) => {
    const r = rejection(deliver('uptime', json(body)));
    expect(r.rejection.code).toBe('invalid_request');
    for (const n of names) expect(r.rejection.error).toContain(`"${n}"`);
    expect(r.rejection.error).toMatch(/^the request has unknown field\(s\)/);
    expect(r.rejection.error).toMatch(
      /known fields: id, action, params, command, timeout, ts, ttl, sig, transaction, press, cancel$/,
    );
  });

  it('a "__proto__" field is an unknown field, not a prototype', () => {
    const r = rejection(deliver('uptime', '{"__proto__": {"action": "uptime"}}'));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toContain('"__proto__"');
  });

  it.each([
    ['params as a list', { params: ['a'] }, 'params'],
    ['params as a string', { params: 'unit=nginx' }, 'params'],
    ['timeout as a string', { timeout: '30' }, 'timeout'],
    ['zero timeout', { timeout: 0 }, 'timeout'],
    ['negative timeout', { timeout: -5 }, 'timeout'],
    ['command as a list', { command: ['uptime'] }, 'command'],
    ['id as an object', { id: { x: 1 } }, 'id'],
    ['sig over 512 characters', { sig: 's'.repeat(513) }, 'sig'],
  ])('%s → invalid_request naming the field', (_label, body, field) => {
    const r = rejection(deliver('uptime', json(body)));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error.startsWith(`"${field}" `)).toBe(true);
  });

  it('command and params together → invalid_request saying to give one', () => {
    const r = rejection(
      deliver(undefined, json({ command: 'systemctl restart nginx', params: { unit: 'nginx' } })),
    );
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/give "params" or a raw "command", not both/);
  });

  it('command with an empty params object is still both', () => {
    expect(
      rejection(deliver(undefined, json({ command: 'uptime', parameters: {} }))).rejection.error,
    ).toMatch(/not both/);
  });

  it('a command over 1024 characters → invalid_request', () => {
    const r = rejection(deliver(undefined, json({ command: 'x'.repeat(1025) })));
    expect(r.rejection.code).toBe('invalid_request');
    expect(r.rejection.error).toMatch(/"command" is longer than 1024 characters/);
  });

  it('a command of 1024 characters is passed on (the pattern decides)', () => {
    expect(accepted(deliver(undefined, json({ command: 'x'.repeat(1024) }))).command).toHaveLength(1024);
  });

  it('every rejection message is a sentence a person can act on', () => {
    const samples = [
      deliver(undefined, 'PRESS'),
      deliver('uptime', '{bad'),
      deliver('uptime', json({ id: 'a b' })),
      deliver('uptime', json({ foo: 1 })),
      deliver('uptime', json({ action: 'disk_usage' })),
      deliver(undefined, json({ command: 'x', params: {} })),
      deliver('uptime', json({ ttl: 1 })),
      deliver('uptime', 'PRESS', true),
    ];
    for (const s of samples) {
      const r = rejection(s);
      expect(r.rejection.error.length).toBeGreaterThan(20);
      // Each says what to change: a dash-led instruction, or what is needed or allowed.
      expect(r.rejection.error).toMatch(/ — |needs|give|name an|must match/);
    }
  });
});

describe('parseDelivery: prototype keys in params (found by test/unit/fuzz.test.ts)', () => {
  it('a "__proto__" param is kept as sent, so validation rejects it as unknown instead of dropping it', () => {
    const req = accepted(deliver('uptime', '{"params":{"__proto__":{"x":1},"a":"b"}}'));
    expect(Object.keys(req.params).sort()).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(req.params)).toBe(Object.prototype);
    expect((req.params as { x?: unknown }).x).toBeUndefined();
  });
});

describe('fieldHint', () => {
  it('names a field by its own entry only, never an inherited property', () => {
    expect(fieldHint('ts')).toMatch(/^ts is the sender's time in milliseconds/);
    expect(fieldHint('constructor')).toBe('see docs/mqtt-api.md § The request object');
    expect(fieldHint(undefined)).toBe('see docs/mqtt-api.md § The request object');
  });
});
