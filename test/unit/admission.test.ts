/** The admission of signed requests as a table (docs/security.md § Signed requests). */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { admit, admitLoad, type AdmissionInput, type LoadInput } from '../../src/core/admission.js';
import { canonicalJson, sign } from '../../src/core/signing.js';

const KEY = 'k'.repeat(32);
const NOW = 1_800_000_000_000;
const reply = { responseTopic: 'ctl/replies/1', correlationData: Buffer.from('0a0b', 'hex') };

/** A request for `restart_service` signed v2 with everything set, as the agent would see it. */
function base(): AdmissionInput {
  const request = {
    id: 'req-1',
    generatedId: false,
    press: false,
    params: { unit: 'nginx' } as Record<string, unknown>,
    command: undefined as string | undefined,
    timeoutMs: 30_000 as number | undefined,
    ts: (NOW - 1000) as number | undefined,
    ttl: 60 as number | undefined,
    sig: undefined as string | undefined,
    transaction: 'tx' as string | undefined,
    cancel: undefined as string | undefined,
  };
  request.sig = sign(KEY, {
    host: 'h1',
    action: 'restart_service',
    id: 'req-1',
    ts: NOW - 1000,
    params: { unit: 'nginx' },
    timeout: 30,
    ttl: 60,
    transaction: 'tx',
    ...reply,
  });
  return {
    request,
    host: 'h1',
    action: 'restart_service',
    privileged: true,
    key: KEY,
    policy: { require_signature: 'privileged', window: 300_000 },
    now: NOW,
    replyTo: reply,
    used: false,
    full: false,
  };
}

type Change = (i: AdmissionInput) => void;
const cases: [string, Change, string | undefined, RegExp?][] = [
  ['as signed', () => undefined, undefined],
  ['another host', (i) => (i.host = 'h2'), 'bad_signature', /does not match/],
  ['another resolved action', (i) => (i.action = 'stop_service'), 'bad_signature'],
  ['another id', (i) => (i.request.id = 'req-2'), 'bad_signature'],
  ['another ts', (i) => (i.request.ts = NOW - 999), 'bad_signature'],
  ['another param', (i) => (i.request.params = { unit: 'sshd' }), 'bad_signature'],
  ['params dropped', (i) => (i.request.params = {}), 'bad_signature'],
  ['a raw command instead of params', (i) => (i.request.command = 'restart nginx'), 'bad_signature'],
  ['another timeout', (i) => (i.request.timeoutMs = 10), 'bad_signature'],
  ['timeout dropped', (i) => (i.request.timeoutMs = undefined), 'bad_signature'],
  ['another ttl', (i) => (i.request.ttl = 3600), 'bad_signature'],
  ['ttl dropped', (i) => (i.request.ttl = undefined), 'bad_signature'],
  ['another transaction', (i) => (i.request.transaction = 'tx2'), 'bad_signature'],
  ['an empty transaction', (i) => (i.request.transaction = ''), 'bad_signature'],
  ['transaction dropped', (i) => (i.request.transaction = undefined), 'bad_signature'],
  ['press', (i) => (i.request.press = true), 'bad_signature'],
  ['a cancel id', (i) => (i.request.cancel = 'req-0'), 'bad_signature'],
  ['another response topic', (i) => (i.replyTo = { ...reply, responseTopic: 'x/y' }), 'bad_signature'],
  ['no response topic', (i) => (i.replyTo = undefined), 'bad_signature'],
  [
    'other correlation data',
    (i) => (i.replyTo = { ...reply, correlationData: Buffer.from('0a0c', 'hex') }),
    'bad_signature',
  ],
  [
    'empty correlation data',
    (i) => (i.replyTo = { ...reply, correlationData: Buffer.alloc(0) }),
    'bad_signature',
  ],
  ['no correlation data', (i) => (i.replyTo = { responseTopic: reply.responseTopic }), 'bad_signature'],
  ['another key', (i) => (i.key = 'x'.repeat(32)), 'bad_signature'],
  ['no key at the agent', (i) => (i.key = undefined), 'bad_signature', /no security.key_file/],
  ['an id the agent made', (i) => (i.request.generatedId = true), 'bad_signature', /its own "id"/],
  ['no ts', (i) => (i.request.ts = undefined), 'bad_signature', /must carry "ts"/],
  ['ts 6 min old', (i) => (i.now = NOW + 360_000), 'expired', /in the past; .*±300 s/],
  ['ts 6 min ahead', (i) => (i.now = NOW - 360_000), 'expired', /in the future/],
  ['a sig that is not hex', (i) => (i.request.sig = 'zz'), 'bad_signature'],
  ['unsigned, privileged', (i) => (i.request.sig = undefined), 'bad_signature', /needs a signed request/],
  [
    'unsigned, not privileged',
    (i) => {
      i.request.sig = undefined;
      i.privileged = false;
    },
    undefined,
  ],
  [
    'unsigned, all',
    (i) => {
      i.request.sig = undefined;
      i.privileged = false;
      i.policy = { require_signature: 'all', window: 300_000 };
    },
    'bad_signature',
  ],
  ['used within its window', (i) => (i.used = true), 'replayed', /valid once/],
  ['the replay set full', (i) => (i.full = true), 'busy', /too many signed requests within the window/],
  ['used, but tampered', (i) => ((i.used = true), (i.request.ttl = 1)), 'bad_signature'],
];

describe('admit', () => {
  it.each(cases)('%s', (_name, change, code, message) => {
    const input = base();
    change(input);
    const r = admit(input);
    expect(r?.code).toBe(code);
    if (message) expect(r?.error).toMatch(message);
  });

  it('a raw command is bound to the action its pattern resolved to, and to its text', () => {
    const i = base();
    i.request.params = {};
    i.request.command = 'restart nginx';
    i.request.sig = sign(KEY, {
      host: 'h1',
      action: 'restart_service',
      id: 'req-1',
      ts: NOW - 1000,
      command: 'restart nginx',
      timeout: 30,
      ttl: 60,
      transaction: 'tx',
      ...reply,
    });
    expect(admit(i)).toBeUndefined();
    expect(admit({ ...i, action: 'log_service' })?.code).toBe('bad_signature');
    expect(admit({ ...i, request: { ...i.request, command: 'restart  nginx' } })?.code).toBe('bad_signature');
  });

  it('a valid v1 signature is refused with the way out: sign with v2', () => {
    const i = base();
    const v1 = [
      'homelab-cmd/v1',
      'h1',
      'restart_service',
      'req-1',
      String(NOW - 1000),
      canonicalJson({ unit: 'nginx' }),
    ];
    i.request.sig = createHmac('sha256', KEY).update(v1.join('\n')).digest('hex');
    expect(admit(i)).toMatchObject({
      code: 'bad_signature',
      error: expect.stringMatching(/retired homelab-cmd\/v1 .*sign with v2 \(docs\/security\.md/) as string,
    });
  });
});

describe('a signed press (press: true, params from the HA entities)', () => {
  /** Signed as sent: press true and no params; the agent has since put the entity values in `params`. */
  function pressInput(): AdmissionInput {
    const i = base();
    i.request.press = true;
    i.request.sig = sign(KEY, {
      host: 'h1',
      action: 'restart_service',
      id: 'req-1',
      ts: NOW - 1000,
      params: {},
      timeout: 30,
      ttl: 60,
      transaction: 'tx',
      press: true,
      ...reply,
    });
    i.request.params = { unit: 'nginx' };
    return i;
  }

  it('verifies over press true and params {}, whatever the entities hold', () => {
    expect(admit(pressInput())).toBeUndefined();
  });

  it('the same signature without press does not verify (press is bound)', () => {
    const i = pressInput();
    i.request.press = false;
    expect(admit(i)?.code).toBe('bad_signature');
  });
});

/** The load: execution.enabled, then execution.concurrency / execution.queue (docs/configuration.md). */
describe('admitLoad', () => {
  const base: LoadInput = {
    host: 'h1',
    source: '/etc/homelab-cmd/config.yaml',
    enabled: true,
    staggered: false,
    resumed: false,
    running: 0,
    waiting: 0,
    concurrency: 2,
    queue: 3,
  };
  const cases: [string, Partial<LoadInput>, string | undefined, RegExp?][] = [
    ['idle', {}, undefined],
    ['disabled', { enabled: false }, 'execution_disabled', /execution.enabled: true in \/etc\/homelab-cmd/],
    ['disabled, even resumed', { enabled: false, resumed: true }, 'execution_disabled'],
    ['a free slot, queue full', { running: 1, waiting: 3 }, undefined],
    ['slots full, queue has room', { running: 2, waiting: 2 }, undefined],
    ['slots full, queue full', { running: 2, waiting: 3 }, 'busy', /2 commands are running and 3 waiting/],
    ['slots full, queue full, resumed', { running: 2, waiting: 3, resumed: true }, undefined],
    ['staggered, its queue has room', { staggered: true, waiting: 2 }, undefined],
    ['staggered, its queue full, slots free', { staggered: true, waiting: 3 }, 'busy'],
  ];
  it.each(cases)('%s', (_name, change, code, message) => {
    const r = admitLoad({ ...base, ...change });
    expect(r?.code).toBe(code);
    if (message) expect(r?.error).toMatch(message);
  });
});
