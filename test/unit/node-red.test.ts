import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { topicMatches } from '../../src/broker/acl.js';
import { parseConfig } from '../../src/config/load.js';
import { parseDelivery } from '../../src/core/request.js';
import { resolveRequest } from '../../src/core/resolve.js';
import { FINAL_STATUSES, makeResult, rejected, type Result } from '../../src/core/result.js';
import { FROM_AGENT, TO_AGENT } from '../helpers/contract.js';

// examples/node-red/flow.json, checked against the contract the way homeassistant.test.ts checks
// the HA files: every topic is a topic of docs/mqtt-api.md § Topics, every field one of § The request object
// or § Result object. The flow's function nodes are run here on real inputs, so the request they
// build is the one Node-RED would send.

const FILE = path.resolve(import.meta.dirname, '../../examples/node-red/flow.json');

type Obj = Record<string, unknown>;
interface FlowNode extends Obj {
  id: string;
  type: string;
  z?: string;
  wires?: string[][];
}

const flow = JSON.parse(readFileSync(FILE, 'utf8')) as FlowNode[];
const byType = (type: string) => flow.filter((n) => n.type === type);
const node = (id: string): FlowNode => {
  const n = flow.find((x) => x.id === id);
  if (!n) throw new Error(`no node ${id} in the flow`);
  return n;
};
const one = (type: string): FlowNode => {
  const ns = byType(type);
  if (ns.length !== 1) throw new Error(`expected one ${type} node, found ${ns.length}`);
  return ns[0]!;
};
/** The nodes wired to output `i` of `n`. */
const next = (n: FlowNode, i = 0): FlowNode[] => (n.wires?.[i] ?? []).map(node);

// A template level ({{ host }}) stands for "+" in the contract's filters.
// docs/mqtt-api.md § The request object (with the HomelabCmd aliases) and § Result object.
const REQUEST_FIELDS = [
  'id',
  'action',
  'params',
  'command',
  'timeout',
  'ts',
  'ttl',
  'sig',
  'transaction',
  'action_id',
  'action_type',
  'parameters',
  'timeout_seconds',
];
const RESULT_FIELDS = [
  'id',
  'host',
  'action',
  'status',
  'exit_code',
  'stdout',
  'stderr',
  'stdout_truncated',
  'stderr_truncated',
  'error_code',
  'error',
  'executed_at',
  'completed_at',
  'duration_ms',
  'run_at',
  'steps',
  'transaction',
];

/** Does contract filter `pattern` cover the filter or topic `used` (same levels; `+` stands for one)? */
function covers(pattern: string, used: string): boolean {
  const p = pattern.split('/');
  const u = used.split('/');
  return (
    p.length === u.length &&
    p.every((level, i) => (level === '+' ? u[i] !== '#' && u[i] !== '' : level === u[i]))
  );
}

/** A message as the inject node builds it from its props. */
function injected(n: FlowNode): Obj {
  const msg: Obj = { _msgid: 'test' };
  for (const p of n.props as { p: string; v: string; vt: string }[]) {
    msg[p.p] =
      p.vt === 'json'
        ? JSON.parse(p.v)
        : p.vt === 'num'
          ? Number(p.v)
          : p.vt === 'bool'
            ? p.v === 'true'
            : p.v;
  }
  return msg;
}

/** Runs a function node's body as Node-RED does: `msg` and `node` in scope, its return value out. */
function runFunction(n: FlowNode, msg: Obj): { out: unknown; errors: unknown[] } {
  const errors: unknown[] = [];
  const api = {
    error: (e: unknown) => errors.push(e),
    warn: () => undefined,
    log: () => undefined,
    status: () => undefined,
  };
  const body = new Function('msg', 'node', String(n.func)) as (msg: Obj, node: typeof api) => unknown;
  return { out: body(msg, api), errors };
}

/** A result whose reads are recorded: which result fields does a function use? */
function recording(r: Result): { proxy: Result; read: Set<string> } {
  const read = new Set<string>();
  const proxy = new Proxy(r, {
    get(target, key, receiver) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { proxy, read };
}

const config = parseConfig(
  [
    'host: pihole-1',
    'execution: { enabled: true }',
    'actions:',
    '  restart_service:',
    '    argv: [systemctl, restart, "{unit}"]',
    '    params: { unit: { type: string, pattern: "^[a-zA-Z0-9_.@-]{1,64}$" } }',
    '    sudo: true',
  ].join('\n'),
  '/nonexistent/agent.yaml',
  {},
);

describe('examples/node-red/flow.json is an importable flow', () => {
  it('is a JSON array of nodes with unique ids', () => {
    expect(Array.isArray(flow)).toBe(true);
    expect(new Set(flow.map((n) => n.id)).size).toBe(flow.length);
  });

  it('has one tab holding every flow node, and every wire leads to a node of the flow', () => {
    const tab = one('tab');
    for (const n of flow.filter((x) => x.type !== 'tab' && x.type !== 'mqtt-broker')) {
      expect(n.z, n.id).toBe(tab.id);
      for (const out of n.wires ?? [])
        for (const id of out) expect(() => node(id), `${n.id} → ${id}`).not.toThrow();
    }
  });

  it('uses only core nodes (nothing to install besides Node-RED)', () => {
    const core = [
      'tab',
      'comment',
      'inject',
      'function',
      'mqtt out',
      'mqtt in',
      'switch',
      'debug',
      'mqtt-broker',
    ];
    for (const n of flow) expect(core, n.type).toContain(n.type);
  });

  it('its mqtt nodes share one MQTT 5 broker config, without credentials in the file', () => {
    const broker = one('mqtt-broker');
    expect(broker.protocolVersion).toBe('5');
    for (const n of [...byType('mqtt in'), ...byType('mqtt out')]) expect(n.broker).toBe(broker.id);
    for (const n of flow) expect(n, n.id).not.toHaveProperty('credentials');
  });

  it('is wired inject → build request → mqtt out, and mqtt in → check result → switch → debug / format alert → debug', () => {
    const inject = one('inject');
    const [build] = next(inject);
    expect(build?.type).toBe('function');
    expect(next(build!).map((n) => n.type)).toEqual(['mqtt out']);
    const sw = one('switch');
    const [check] = next(one('mqtt in'));
    expect(check?.name).toBe('check result');
    expect(next(check!).map((n) => n.id)).toEqual([sw.id]);
    expect(next(sw, 0).map((n) => n.type)).toEqual(['debug']);
    for (let i = 1; i < (sw.wires ?? []).length; i++) {
      const [alert] = next(sw, i);
      expect(alert?.type, `output ${i}`).toBe('function');
      expect(next(alert!).map((n) => n.type)).toEqual(['debug']);
    }
  });
});

describe('MQTT topics are topics of the contract', () => {
  const sent = () => runFunction(next(one('inject'))[0]!, injected(one('inject'))).out as Obj;

  it('mqtt out publishes, never retained, only to a topic an agent reads: homelab/<host>/cmd/<action>', () => {
    const out = one('mqtt out');
    expect(out.retain).toBe('false');
    // An empty topic in the node: the topic comes from msg.topic, set by "build request".
    const topic = out.topic === '' ? String(sent().topic) : String(out.topic);
    expect(
      TO_AGENT.some((f) => topicMatches(f, topic)),
      topic,
    ).toBe(true);
    expect(topic).toBe('homelab/pihole-1/cmd/restart_service');
    const template = /`([^`]*\/cmd\/[^`]*)`/.exec(String(next(one('inject'))[0]!.func))?.[1];
    expect(template?.replace(/\$\{[^}]+\}/g, '+')).toBe('homelab/+/cmd/+');
  });

  it('mqtt in subscribes only to topics an agent writes, as JSON, without replaying retained results at deploy', () => {
    for (const n of byType('mqtt in')) {
      expect(
        FROM_AGENT.some((f) => covers(f, String(n.topic))),
        String(n.topic),
      ).toBe(true);
      expect(n.datatype).toBe('json');
      expect(n.rh).toBe(2); // MQTT 5 Retain Handling 2: an old retained failure is not announced again
    }
    expect(one('mqtt in').topic).toBe('homelab/+/result');
  });
});

describe('the request is a request object of the contract, and the agent accepts it', () => {
  const build = () => next(one('inject'))[0]!;
  const sent = () => runFunction(build(), injected(one('inject')));

  it('builds id, action, params, ts, ttl and transaction — fields of the request object only', () => {
    const { out, errors } = sent();
    expect(errors).toEqual([]);
    const payload = (out as Obj).payload as Obj;
    expect(Object.keys(payload).sort()).toEqual(['action', 'id', 'params', 'transaction', 'ts', 'ttl']);
    for (const k of Object.keys(payload)) expect(REQUEST_FIELDS).toContain(k);
    expect(String(payload.transaction).length).toBeLessThanOrEqual(64);
  });

  it('sends a new message with only topic and payload: the mqtt out node would act on msg.action', () => {
    // Node-RED's mqtt out node treats msg.action as its own command (connect, subscribe …) and
    // fails with "Invalid action specified" on anything else — seen when the flow was run for real.
    expect(Object.keys(sent().out as Obj).sort()).toEqual(['messageExpiryInterval', 'payload', 'topic']);
  });

  it('stamps ts now and ttl, with MQTT 5 message expiry as long (the broker config is MQTT 5)', () => {
    const before = Date.now();
    const out = sent().out as { payload: Obj; messageExpiryInterval: unknown };
    expect(out.payload.ts).toBeGreaterThanOrEqual(before);
    expect(out.payload.ts).toBeLessThanOrEqual(Date.now());
    expect(Number.isInteger(out.payload.ttl) && (out.payload.ttl as number) > 0).toBe(true);
    expect(out.messageExpiryInterval).toBe(out.payload.ttl);
    // The mqtt out node's own expiry field would override msg.messageExpiryInterval: it stays empty.
    expect(one('mqtt out').expiry).toBe('');
    expect(one('mqtt-broker').protocolVersion).toBe('5');
  });

  it('a request the flow built is expired once its ttl has passed (held at the broker while the host was down)', () => {
    const out = sent().out as { payload: { ts: number; ttl: number } };
    const late = parseDelivery(
      { topicAction: 'restart_service', payload: Buffer.from(JSON.stringify(out.payload)), retained: false },
      out.payload.ts + out.payload.ttl * 1000 + 1000,
      () => 'gen',
    );
    expect(!late.ok && late.rejection.code).toBe('expired');
  });

  it('parseDelivery accepts it on its topic, and it resolves against an agent config with that action', () => {
    const out = sent().out as { topic: string; payload: Obj };
    const topicAction = out.topic.split('/').at(-1)!;
    const parsed = parseDelivery(
      { topicAction, payload: Buffer.from(JSON.stringify(out.payload)), retained: false },
      Date.now(),
      () => 'gen',
    );
    expect(parsed.ok, JSON.stringify(parsed)).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.request.id).toBe(out.payload.id);
    expect(parsed.request.transaction).toBe(out.payload.transaction);
    const resolved = resolveRequest(parsed.request, config.actions, {
      sudo: config.execution.sudo,
      timeoutMs: config.execution.timeout,
    });
    expect(resolved.ok, JSON.stringify(resolved)).toBe(true);
    if (resolved.ok) expect(resolved.job.commands).toEqual([['systemctl', 'restart', 'pihole-FTL']]);
  });

  it('gives every press a new, valid request id (an id never runs twice)', () => {
    const ids = new Set(Array.from({ length: 20 }, () => ((sent().out as Obj).payload as Obj).id));
    expect(ids.size).toBe(20);
    for (const id of ids) expect(String(id)).toMatch(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/);
  });

  it('refuses to send without a valid host and action, and says why', () => {
    const { out, errors } = runFunction(build(), { host: 'Pi Hole', action: 'restart_service' });
    expect(out).toBeNull();
    expect(errors).toHaveLength(1);
  });
});

describe('results: the switch and the alert use fields and statuses of the contract', () => {
  const sw = () => one('switch');
  const alertFn = () => next(sw(), 1)[0]!;

  it('switches on payload.status, a result field', () => {
    expect(sw().propertyType).toBe('msg');
    const [head, field] = String(sw().property).split('.');
    expect(head).toBe('payload');
    expect(RESULT_FIELDS).toContain(field);
  });

  it('has one output per final status: succeeded to a debug node, every other to the alert', () => {
    const rules = sw().rules as { t: string; v: string }[];
    expect(rules.every((r) => r.t === 'eq')).toBe(true);
    expect(rules.map((r) => r.v).sort()).toEqual([...FINAL_STATUSES].sort());
    expect(rules[0]!.v).toBe('succeeded');
    expect(sw().outputs).toBe(rules.length);
    expect(sw().checkall).toBe('false');
  });

  const failures: [string, Result][] = [
    [
      'failed',
      makeResult(
        'pihole-1',
        { id: 'r1', action: 'apply_updates', transaction: 'nodered' },
        {
          status: 'failed',
          exit_code: 100,
          error_code: 'exit_nonzero',
          error: 'apt-get exited with code 100 — see stderr',
        },
      ),
    ],
    [
      'timed_out',
      makeResult(
        'pihole-1',
        { id: 'r2', action: 'apply_updates' },
        { status: 'timed_out', error_code: 'timeout', error: 'apt-get ran longer than its timeout' },
      ),
    ],
    [
      'rejected',
      rejected(
        'pihole-1',
        { id: 'r3', action: null },
        { code: 'unknown_action', error: 'this host has no action "x"' },
        new Date(),
      ),
    ],
    [
      'interrupted',
      makeResult(
        'pihole-1',
        { id: 'r4', action: 'restart_dns' },
        {
          status: 'interrupted',
          error_code: 'interrupted',
          error: 'the agent stopped while the command ran',
        },
      ),
    ],
  ];

  it.each(failures)(
    'format alert turns a %s result into one line, reading only result fields',
    (_status, result) => {
      const { proxy, read } = recording(result);
      const { out, errors } = runFunction(alertFn(), { payload: proxy, topic: 'homelab/pihole-1/result' });
      expect(errors).toEqual([]);
      const msg = out as Obj;
      expect(typeof msg.payload).toBe('string');
      expect(msg.payload).toContain(result.host);
      expect(msg.payload).toContain(result.status);
      expect(msg.payload).toContain(result.error_code);
      expect(msg.payload).toContain(result.error);
      expect(msg.result).toBe(proxy);
      expect(read.size).toBeGreaterThan(0);
      for (const f of read) expect(RESULT_FIELDS, f).toContain(f);
    },
  );
});

describe('check result: only a result of the topic’s host reaches the switch (docs/security.md § Answers that cannot be faked)', () => {
  const check = () => next(one('mqtt in'))[0]!;
  const real = makeResult('pihole-1', { id: 'nodered-1', action: 'restart_dns' }, { status: 'succeeded' });

  it('passes a result of the host whose topic it came on', () => {
    const msg = { payload: real, topic: 'homelab/pihole-1/result' };
    expect(runFunction(check(), msg).out).toBe(msg);
  });

  it.each([
    ['another host', { ...real, host: 'pihole-2' }],
    ['no host', { ...real, host: undefined }],
    ['no id', { ...real, id: undefined }],
    ['an id that is no request id', { ...real, id: '../x y' }],
    ['no status', { ...real, status: undefined }],
    ['an array', ['succeeded']],
    ['a string', 'succeeded'],
    ['null', null],
  ])('drops %s', (_what, payload) => {
    expect(runFunction(check(), { payload, topic: 'homelab/pihole-1/result' }).out).toBeNull();
  });
});
