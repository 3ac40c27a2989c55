import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, type ScalarTag } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { BUTTON_COMMAND_TEMPLATE, buildDiscovery } from '../../src/core/discovery.js';
import { LAST_REBOOT_ATTRIBUTES } from '../../src/core/discovery-reboots.js';
import { parseDelivery } from '../../src/core/request.js';
import { runningStateSchema } from '../../src/core/running.js';
import { VERSION } from '../../src/version.js';
import { FROM_AGENT, TO_AGENT } from '../helpers/contract.js';
import { haveJinja, runJinja } from '../helpers/jinja.js';

// The shipped homeassistant/ folder, checked against the contract: it parses, and every topic
// and field it uses exists in docs/mqtt-api.md § Topics, § The request object and § Result object.

const ROOT = fileURLToPath(new URL('../../homeassistant/', import.meta.url));

/** HA's `!input name` and `!secret name`, kept as markers so the tests can find them. */
class InputRef {
  constructor(readonly name: string) {}
}
class SecretRef {
  constructor(readonly name: string) {}
}
const TAGS: ScalarTag[] = [
  { tag: '!input', identify: (v) => v instanceof InputRef, resolve: (v) => new InputRef(v) },
  { tag: '!secret', identify: (v) => v instanceof SecretRef, resolve: (v) => new SecretRef(v) },
];

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(full);
    return /\.ya?ml$/.test(e.name) ? [full] : [];
  });
}

interface Parsed {
  rel: string;
  errors: string[];
  warnings: string[];
  data: unknown;
}

const FILES: Parsed[] = yamlFiles(ROOT)
  .sort()
  .map((file) => {
    const doc = parseDocument(readFileSync(file, 'utf8'), {
      customTags: TAGS,
      uniqueKeys: true,
      prettyErrors: true,
    });
    return {
      rel: path.relative(ROOT, file),
      errors: doc.errors.map((e) => e.message),
      warnings: doc.warnings.map((w) => w.message),
      data: doc.errors.length === 0 ? (doc.toJS() as unknown) : undefined,
    };
  });
const TABLE = FILES.map((f) => [f.rel, f] as const);
const file = (rel: string): Parsed => {
  const f = FILES.find((x) => x.rel === rel);
  if (!f) throw new Error(`${rel} is missing from homeassistant/`);
  return f;
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  !(v instanceof InputRef) &&
  !(v instanceof SecretRef);

/** Every mapping in the tree, depth first. */
function objects(v: unknown): Obj[] {
  if (Array.isArray(v)) return v.flatMap(objects);
  if (isObj(v)) return [v, ...Object.values(v).flatMap(objects)];
  return [];
}
/** Every string in the tree. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (isObj(v)) return Object.values(v).flatMap(strings);
  return [];
}
function inputRefs(v: unknown): InputRef[] {
  if (v instanceof InputRef) return [v];
  if (Array.isArray(v)) return v.flatMap(inputRefs);
  if (isObj(v)) return Object.values(v).flatMap(inputRefs);
  return [];
}

// A template level ({{ host }}) stands for "+" in the contract's filters.
const CONTRACT_TOPICS = [...TO_AGENT, ...FROM_AGENT, 'homeassistant/status'];

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
  'press',
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

const normalizeTopic = (t: string): string => t.replace(/\{\{[^}]*\}\}/g, '+').trim();

/** Does contract filter `pattern` cover everything `used` publishes to or subscribes to? */
function covers(pattern: string, used: string): boolean {
  const p = pattern.split('/');
  const u = used.split('/');
  return (
    p.length === u.length &&
    p.every((level, i) => (level === '+' ? u[i] !== '#' && u[i] !== '' : level === u[i]))
  );
}

/** Topics by role: what a file publishes with mqtt.publish, and what its mqtt triggers subscribe. */
function topicsOf(data: unknown): { published: string[]; subscribed: string[]; all: string[] } {
  const objs = objects(data);
  const published = objs
    .filter((o) => o.action === 'mqtt.publish' && isObj(o.data))
    .map((o) => String((o.data as Obj).topic));
  const subscribed = objs
    .filter((o) => o.trigger === 'mqtt' || o.platform === 'mqtt')
    .map((o) => String(o.topic));
  const all = objs.filter((o) => 'topic' in o).map((o) => String(o.topic));
  return { published, subscribed, all };
}

/** The JSON payload templates of mqtt.publish, e.g. `{{ {'id': …, 'params': …} | to_json }}`. */
function publishPayloads(data: unknown): string[] {
  return objects(data)
    .filter(
      (o) => o.action === 'mqtt.publish' && isObj(o.data) && typeof (o.data as Obj).payload === 'string',
    )
    .map((o) => String((o.data as Obj).payload));
}
const payloadKeys = (template: string): string[] =>
  [...template.matchAll(/['"](\w+)['"]\s*:/g)].map((m) => m[1]!);

describe('every YAML file under homeassistant/ parses', () => {
  it('the folder holds the package, the blueprint and the dashboard card', () => {
    expect(FILES.map((f) => f.rel)).toEqual(
      expect.arrayContaining([
        'packages/homelab_cmd.yaml',
        'blueprints/automation/homelab_cmd/run_action.yaml',
        'blueprints/script/homelab_cmd/run_on_group.yaml',
        'dashboards/host_card.yaml',
      ]),
    );
  });

  it.each(TABLE)('%s: no errors, no warnings (unknown tags warn), a mapping', (_rel, f) => {
    expect(f.errors).toEqual([]);
    expect(f.warnings).toEqual([]);
    expect(isObj(f.data)).toBe(true);
  });

  it.each(TABLE)('%s: Jinja delimiters are balanced in every string', (_rel, f) => {
    for (const s of strings(f.data)) {
      expect(s.split('{{').length, s).toBe(s.split('}}').length);
      expect(s.split('{%').length, s).toBe(s.split('%}').length);
    }
  });
});

describe('MQTT topics are topics of the contract', () => {
  it.each(TABLE)('%s: every topic matches a contract topic', (_rel, f) => {
    for (const t of topicsOf(f.data).all) {
      const used = normalizeTopic(t);
      expect(
        CONTRACT_TOPICS.some((p) => covers(p, used)),
        `${t} → ${used}`,
      ).toBe(true);
    }
  });

  it.each(TABLE)(
    '%s: it publishes only to topics an agent reads, and subscribes only to topics an agent writes',
    (_rel, f) => {
      const { published, subscribed } = topicsOf(f.data);
      for (const t of published)
        expect(
          TO_AGENT.some((p) => covers(p, normalizeTopic(t))),
          t,
        ).toBe(true);
      for (const t of subscribed)
        expect(
          FROM_AGENT.some((p) => covers(p, normalizeTopic(t))),
          t,
        ).toBe(true);
    },
  );

  it.each([
    ['packages/homelab_cmd.yaml', ['homelab/+/cmd/+'], ['homelab/+/result', 'homelab/+/result/+']],
    ['blueprints/automation/homelab_cmd/run_action.yaml', ['homelab/+/cmd/+'], ['homelab/+/result/+']],
    ['blueprints/script/homelab_cmd/run_on_group.yaml', ['homelab/+/cmd/+'], ['homelab/+/result/+']],
    ['dashboards/host_card.yaml', [], []],
  ])('%s uses the expected topics (so the checks above are not vacuous)', (rel, published, subscribed) => {
    const t = topicsOf(file(rel).data);
    expect([...new Set(t.published.map(normalizeTopic))].sort()).toEqual(published);
    expect([...new Set(t.subscribed.map(normalizeTopic))].sort()).toEqual(subscribed);
  });
});

describe('request and result fields are fields of the contract', () => {
  it.each(TABLE)('%s: value_json.<f> and payload_json.<f> name result fields', (_rel, f) => {
    for (const s of strings(f.data)) {
      for (const [, field] of s.matchAll(/(?:value_json|payload_json)\.(\w+)/g)) {
        expect(RESULT_FIELDS, s).toContain(field);
      }
    }
  });

  it.each(TABLE)(
    '%s: JSON payload keys are request fields, and the agent accepts such a request',
    (_rel, f) => {
      for (const template of publishPayloads(f.data)) {
        const keys = payloadKeys(template);
        expect(keys.length, template).toBeGreaterThan(0);
        for (const k of keys) expect(REQUEST_FIELDS, template).toContain(k);
        // The same keys with sample values (a context id is a 26-character ULID): the strict request schema accepts them.
        const transaction = /['"]transaction['"]\s*:\s*'([^']*)'/.exec(template)?.[1] ?? 'ha';
        const sample: Obj = { id: 'ha-01JD7Z4W9K3X8Q2V6N5M1R0T4Y', params: {}, ts: 0, ttl: 60, transaction };
        const request = Object.fromEntries(keys.map((k) => [k, sample[k]]));
        const outcome = parseDelivery(
          { topicAction: 'restart_dns', payload: Buffer.from(JSON.stringify(request)), retained: false },
          0,
          () => 'gen',
        );
        expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
      }
    },
  );

  it.each([
    ['packages/homelab_cmd.yaml', 3],
    ['blueprints/automation/homelab_cmd/run_action.yaml', 1],
    ['blueprints/script/homelab_cmd/run_on_group.yaml', 1],
  ])('%s sends %i JSON request(s) with id, params, ts, ttl and transaction', (rel, count) => {
    const payloads = publishPayloads(file(rel).data);
    expect(payloads).toHaveLength(count);
    for (const p of payloads) {
      expect(payloadKeys(p).sort()).toEqual(['id', 'params', 'transaction', 'ts', 'ttl']);
      expect(p).toMatch(/\|\s*to_json\s*\}\}\s*$/);
    }
  });

  it('the dashboard shows only the attributes the last-result, last-reboot and Running sensors have', () => {
    const rows = objects(file('dashboards/host_card.yaml').data).filter((o) => o.type === 'attribute');
    expect(rows.length).toBeGreaterThan(0);
    const rebootKeys = [...LAST_REBOOT_ATTRIBUTES.matchAll(/'([a-z_]+)':/g)].map((m) => m[1]);
    const runningFields = Object.keys(runningStateSchema.shape);
    for (const r of rows) {
      const entity = String(r.entity);
      expect(entity).toMatch(/_(last_result|last_reboot|current_run)$/);
      const fields = entity.endsWith('_current_run')
        ? runningFields
        : entity.endsWith('_last_reboot')
          ? rebootKeys
          : RESULT_FIELDS;
      expect(fields).toContain(r.attribute);
    }
  });
});

describe('package: scripts and the failure automation', () => {
  const pkg = () => file('packages/homelab_cmd.yaml').data as Obj;

  /** The failure notification's message, rendered by the real Jinja for each result given. */
  const notification = (results: Obj[]): string[] => {
    const message = objects(pkg()).find(
      (o) => typeof o.message === 'string' && o.message.includes('stderr (last lines)'),
    )!.message as string;
    return runJinja<string[]>(
      [
        'import json, sys',
        'from jinja2.sandbox import ImmutableSandboxedEnvironment',
        'd = json.load(sys.stdin)',
        't = ImmutableSandboxedEnvironment().from_string(d["t"])',
        'print(json.dumps([t.render(trigger={"payload_json": p}) for p in d["p"]]))',
      ].join('\n'),
      { t: message, p: results },
    );
  };

  it.skipIf(!haveJinja)(
    'the failure notification keeps stderr as a block of its own lines, and says nothing of it when empty',
    () => {
      const result = { id: 'r1', error: 'apt-get exited with code 100', exit_code: 100, duration_ms: 1500 };
      const [withErr, without] = notification([
        { ...result, stderr: 'E: Could not get lock /var/lib/dpkg/lock-frontend\nE: Unable to acquire it' },
        { ...result, stderr: '' },
      ]);
      expect(withErr).toBe(
        'apt-get exited with code 100\n\nExit code 100, ran 1.5 s. Request id `r1`.\n\nstderr (last lines):\n```\nE: Could not get lock /var/lib/dpkg/lock-frontend\nE: Unable to acquire it\n```',
      );
      expect(without).toBe('apt-get exited with code 100\n\nExit code 100, ran 1.5 s. Request id `r1`.');
    },
  );

  it.each(['homelab_cmd_run', 'homelab_cmd_run_and_wait'])(
    'script %s has fields host, action, params and publishes via mqtt.publish',
    (name) => {
      const script = (pkg().script as Obj)[name] as Obj;
      expect(Object.keys(script.fields as Obj)).toEqual(expect.arrayContaining(['host', 'action', 'params']));
      expect((script.fields as Obj).host).toMatchObject({ required: true });
      expect((script.fields as Obj).action).toMatchObject({ required: true });
      const publish = objects(script.sequence).filter((o) => o.action === 'mqtt.publish');
      expect(publish).toHaveLength(1);
      expect(publish[0]!.data).toMatchObject({ topic: 'homelab/{{ host }}/cmd/{{ action }}', retain: false });
    },
  );

  it.each<[string, () => Obj, string]>([
    ['the package script', () => (pkg().script as Obj).homelab_cmd_run_on_group as Obj, 'action'],
    [
      'the script blueprint',
      () => file('blueprints/script/homelab_cmd/run_on_group.yaml').data as Obj,
      'cmd_action',
    ],
  ])('run on group (%s): one request per host with ts and ttl, then a summary response', (_n, get, act) => {
    const script = get();
    const loops = objects(script.sequence).filter((o) => isObj(o.repeat));
    expect(loops.map((l) => (l.repeat as Obj).for_each)).toEqual(['{{ hosts }}', '{{ hosts }}']);
    const publish = objects(script.sequence).filter((o) => o.action === 'mqtt.publish');
    expect(publish).toHaveLength(1);
    expect(publish[0]!.data).toMatchObject({
      topic: `homelab/{{ repeat.item }}/cmd/{{ ${act} }}`,
      retain: false,
    });
    const payload = String((publish[0]!.data as Obj).payload);
    expect(payloadKeys(payload)).toEqual(expect.arrayContaining(['ts', 'ttl']));
    // A request id is at most 64 characters, however long the host id.
    expect(payload).toContain("(run_id ~ '-' ~ repeat.item)[:64]");
    const stop = objects(script.sequence).find((o) => 'stop' in o)!;
    expect(stop.response_variable).toBe('response');
    expect(JSON.stringify(script.sequence)).toMatch(/'run_id': run_id.*'results'.*'succeeded'.*'failed'/s);
  });

  it('the automation notifies on failed and timed_out results of any host', () => {
    const automations = pkg().automation as Obj[];
    expect(automations).toHaveLength(1);
    const a = automations[0]!;
    const triggers = a.triggers as Obj[];
    expect(
      triggers.every(
        (t) =>
          t.trigger === 'mqtt' &&
          t.topic === 'homelab/+/result' &&
          t.value_template === '{{ value_json.status }}',
      ),
    ).toBe(true);
    expect(triggers.map((t) => t.payload).sort()).toEqual(['failed', 'timed_out']);
    expect(objects(a.actions).map((o) => o.action)).toContain('persistent_notification.create');
  });
});

describe('blueprint', () => {
  const bp = () => file('blueprints/automation/homelab_cmd/run_action.yaml').data as Obj;

  it('declares the inputs trigger, host, action, params and a notify target', () => {
    const meta = bp().blueprint as Obj;
    expect(meta.domain).toBe('automation');
    expect(Object.keys(meta.input as Obj)).toEqual(
      expect.arrayContaining(['trigger', 'host', 'action', 'params', 'notify_target']),
    );
  });

  it('every !input names a declared input, and every input is used', () => {
    const declared = Object.keys((bp().blueprint as Obj).input as Obj).sort();
    const used = [...new Set(inputRefs(bp()).map((r) => r.name))].sort();
    expect(used).toEqual(declared);
    expect(bp().triggers).toBeInstanceOf(InputRef);
  });

  it('notifies through the chosen notify target unless the result succeeded', () => {
    const notify = objects(bp().actions).filter((o) => o.action instanceof InputRef);
    expect(notify.map((o) => (o.action as InputRef).name)).toEqual(['notify_target']);
    expect(strings(bp().actions).join('\n')).toMatch(/payload_json\.status != 'succeeded'/);
  });
});

describe('blueprint: reboot when required', () => {
  const bp = () => file('blueprints/automation/homelab_cmd/reboot_when_required.yaml').data as Obj;

  it('presses the Reboot button (a stamped press), never publishes a request itself', () => {
    const acts = objects(bp().actions);
    expect(acts.filter((o) => o.action === 'button.press')).toHaveLength(1);
    expect(acts.some((o) => o.action === 'mqtt.publish')).toBe(false);
  });

  it('waits for Last reboot to go rebooting, then for succeeded or failed (rebooting is not final)', () => {
    const waits = objects(bp().actions)
      .filter((o) => Array.isArray(o.wait_for_trigger))
      .flatMap((o) => o.wait_for_trigger as Obj[]);
    expect(waits.map((w) => w.to)).toEqual(['rebooting', ['succeeded', 'failed']]);
  });
});

describe('dashboard card', () => {
  const config = parseConfig(
    'host: pihole-1\nactions:\n  restart_dns:\n    argv: [pihole, restartdns]\n    button: true\n    name: Restart DNS\n  reboot:\n    argv: [systemctl, reboot]\n    reboot: true\nupdates:\n  enabled: true\n',
    '/nonexistent/agent.yaml',
    {},
  );
  const ids = new Set(
    buildDiscovery({
      host: config.host,
      prefix: config.mqtt.prefix,
      discoveryPrefix: config.discovery.prefix,
      version: VERSION,
      actions: config.actions,
      updates: config.updates,
    }).map((m) => String(m.payload.default_entity_id)),
  );
  const card = () => file('dashboards/host_card.yaml').data;
  const entityIds = (): string[] => {
    const fromRows = objects(card()).flatMap((o) => (typeof o.entity === 'string' ? [o.entity] : []));
    const plain = objects(card()).flatMap((o) =>
      Array.isArray(o.entities) ? o.entities.filter((e): e is string => typeof e === 'string') : [],
    );
    return [...fromRows, ...plain];
  };

  it('is an entities card or a grid', () => {
    expect(['entities', 'grid']).toContain((card() as Obj).type);
  });

  it.each([
    'binary_sensor.pihole_1_connectivity',
    'sensor.pihole_1_last_result',
    'sensor.pihole_1_uptime',
    'sensor.pihole_1_load_1',
    'sensor.pihole_1_memory_use',
    'sensor.pihole_1_disk_use',
    'button.pihole_1_run_restart_dns',
    'update.pihole_1_os_updates',
    'binary_sensor.pihole_1_reboot_required',
    'sensor.pihole_1_last_reboot',
    'button.pihole_1_run_reboot',
    'sensor.pihole_1_current_run',
    'button.pihole_1_cancel',
  ])('shows %s', (id) => {
    expect(entityIds()).toContain(id);
  });

  it('every entity id it uses is a default_entity_id of buildDiscovery for pihole-1', () => {
    const used = entityIds();
    expect(used.length).toBeGreaterThan(0);
    for (const id of used) expect(ids, id).toContain(id);
  });
});

describe('README', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it.each([
    ['packages via homeassistant: packages:', /homeassistant:\s*\n\s*packages:/],
    ['blueprint import', /Import blueprint/],
    ['dashboard card paste', /Manual, and paste/],
    ['HA needs an MQTT 5 broker from 2027.1', /MQTT 5 broker[\s\S]{0,20}from 2027\.1/],
  ])('explains %s', (_l, re) => {
    expect(readme).toMatch(re);
  });

  it('every relative link points at a file that exists', () => {
    const links = [...readme.matchAll(/\]\((?!https?:)([^)#]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    for (const l of links) expect(existsSync(path.join(ROOT, l)), l).toBe(true);
  });
});

/**
 * The waits of the script and the blueprint, rendered with Jinja2 as Home Assistant's MQTT trigger does:
 * `payload` with the run's variables, `value_template` with the message only; a message triggers when
 * the two are equal. Needs python3 with jinja2 (Home Assistant's template engine); skipped without.
 */
describe('waits accept only a final result whose id and host are the ones sent', () => {
  const jinja = haveJinja;
  const render = (jobs: { template: string; vars: Obj }[]): string[] => {
    const script = [
      'import json, sys, jinja2',
      'env = jinja2.Environment()',
      'jobs = json.load(sys.stdin)',
      'print(json.dumps([env.from_string(j["template"]).render(**j["vars"]) for j in jobs]))',
    ].join('\n');
    return runJinja<string[]>(script, jobs);
  };
  const waits = (rel: string) =>
    objects(file(rel).data)
      .filter((o) => Array.isArray(o.wait_for_trigger))
      .flatMap((o) => o.wait_for_trigger as Obj[])
      .filter((t) => t.trigger === 'mqtt');
  const sent = { request_id: 'ha-01JD7Z4W9K3X8Q2V6N5M1R0T4Y', host: 'pihole-1' };
  const result = { id: sent.request_id, host: sent.host, action: 'restart_dns', exit_code: 0 };
  const cases: [string, unknown, boolean][] = [
    ['succeeded', { ...result, status: 'succeeded' }, true],
    ['failed', { ...result, status: 'failed' }, true],
    ['rejected', { ...result, status: 'rejected' }, true],
    ['running (not final)', { ...result, status: 'running' }, false],
    ['scheduled (not final)', { ...result, status: 'scheduled' }, false],
    [
      'rebooting (not final: the host is down, the final follows the boot)',
      { ...result, status: 'rebooting' },
      false,
    ],
    ['an unknown status', { ...result, status: 'done' }, false],
    ['another host', { ...result, host: 'pihole-2', status: 'succeeded' }, false],
    ['another id', { ...result, id: 'ha-other', status: 'succeeded' }, false],
    ['no id and host', { status: 'succeeded' }, false],
    ['an array', ['succeeded'], false],
  ];

  it.skipIf(!jinja).each<[string, number]>([
    ['packages/homelab_cmd.yaml', 2],
    ['blueprints/automation/homelab_cmd/run_action.yaml', 1],
    ['blueprints/script/homelab_cmd/run_on_group.yaml', 1],
  ])('%s', (rel, count) => {
    const triggers = waits(rel);
    expect(triggers).toHaveLength(count);
    // The run-on-group waits name the request `rid` and the host `repeat.item` (a for_each loop).
    const vars = { ...sent, rid: sent.request_id, repeat: { item: sent.host } };
    for (const t of triggers) {
      const [wanted, ...got] = render([
        { template: String(t.payload), vars },
        ...cases.map(([, value_json]) => ({ template: String(t.value_template), vars: { value_json } })),
      ]);
      cases.forEach(([what, , triggers], i) => expect(got[i] === wanted, what).toBe(triggers));
    }
  });
});

/**
 * What the scripts, the blueprint and a button publish, rendered with Jinja2 and the Home Assistant
 * pieces they use (helpers/template/extensions/datetime.py: now() a tz-aware datetime, as_timestamp()
 * float seconds; to_json): one JSON request, stamped with an integer ts of now and a ttl, that the
 * agent accepts now and answers expired once the ttl has passed. Skipped without python3 + jinja2.
 */
describe('every request Home Assistant sends is stamped with ts and ttl', () => {
  const jinja = haveJinja;
  const render = (template: string, vars: Obj): { text: string; nowMs: number } => {
    const script = [
      'import json, sys, jinja2',
      'from datetime import datetime, timezone',
      'env = jinja2.Environment()',
      'env.globals["now"] = lambda: datetime.now(timezone.utc)',
      'env.globals["as_timestamp"] = lambda d: d.timestamp()',
      'env.filters["to_json"] = json.dumps',
      'job = json.load(sys.stdin)',
      'before = datetime.now(timezone.utc).timestamp() * 1000',
      'text = env.from_string(job["template"]).render(**job["vars"])',
      'print(json.dumps({"text": text, "nowMs": before}))',
    ].join('\n');
    return runJinja<{ text: string; nowMs: number }>(script, { template, vars });
  };
  const vars: Obj = {
    host: 'pihole-1',
    action: 'restart_dns',
    params: {},
    wait_seconds: 90,
    context: { id: '01JD7Z4W9K3X8Q2V6N5M1R0T4Y' },
    request_id: 'ha-01JD7Z4W9K3X8Q2V6N5M1R0T4Y',
    // The run-on-group scripts: one request per host of a repeat over the hosts.
    run_id: 'ha7z4w9k3x8q',
    wait_s: 90,
    repeat: { item: 'pihole-1' },
  };
  const cases: [string, string, number][] = [
    ...TABLE.flatMap(([rel, f]) =>
      publishPayloads(f.data).map((t, i) => [`${rel} publish #${i + 1}`, t, 0] as [string, string, number]),
    ),
    ['a discovered button (command_template)', BUTTON_COMMAND_TEMPLATE, 60],
  ];

  it('covers the scripts (run, run and wait, run on group), both blueprints and the button', () => {
    expect(cases).toHaveLength(6);
  });

  it.skipIf(!jinja).each(cases)('%s', (_l, template, fixedTtl) => {
    const { text, nowMs } = render(template, { ...vars, value: 'PRESS' });
    const body = JSON.parse(text) as Obj;
    expect(Number.isInteger(body.ts)).toBe(true);
    expect(body.ts as number).toBeGreaterThanOrEqual(Math.floor(nowMs));
    expect(body.ts as number).toBeLessThan(nowMs + 60_000);
    // The package's plain run: its ttl field's default (60); run_and_wait and the blueprint: the wait.
    const ttl = body.ttl as number;
    expect(Number.isInteger(ttl) && ttl > 0).toBe(true);
    if (fixedTtl) expect(ttl).toBe(fixedTtl);
    else expect([60, 90]).toContain(ttl);
    const deliver = (at: number) =>
      parseDelivery(
        { topicAction: 'restart_dns', payload: Buffer.from(text), retained: false },
        at,
        () => 'gen',
      );
    expect(deliver(body.ts as number).ok).toBe(true);
    const late = deliver((body.ts as number) + ttl * 1000 + 1000);
    expect(!late.ok && late.rejection.code).toBe('expired');
  });

  it('the dashboard card publishes nothing itself: it presses discovered buttons, which stamp', () => {
    const card = file('dashboards/host_card.yaml');
    expect(
      objects(card.data).filter((o) => o.action === 'mqtt.publish' || o.service === 'mqtt.publish'),
    ).toEqual([]);
    const buttons = objects(card.data).filter((o) => String(o.entity).startsWith('button.'));
    expect(buttons.length).toBeGreaterThan(0);
  });
});
