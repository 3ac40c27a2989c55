/** Issue 10: deployments (health, rollback), retry and path params — the config and the pure parts, as tables. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import { type ConfigIssue } from '../../src/errors.js';
import { configIssues } from '../helpers/config-issues.js';
import { isInside, lexicalPath } from '../../src/core/paths.js';
import { resolveRequest, type Job } from '../../src/core/resolve.js';
import { makeResult } from '../../src/core/result.js';
import { confinePaths } from '../../src/exec/confine.js';
import { staggerOf } from '../../src/agent/run-job.js';
import { backoffMs, retryable, MAX_BACKOFF_MS } from '../../src/exec/retry.js';
import { sudoersLines } from '../../src/cli/sudoers.js';
import { explain } from '../../src/cli/explain.js';
import { configWarnings } from '../../src/cli/check-config.js';

const parse = (yaml: string): Config => parseConfig(yaml, '/test/agent.yaml', {});

const issuesOf = (yaml: string): ConfigIssue[] => configIssues(yaml, '/test/agent.yaml');

const action = (body: string) => `actions:\n  deploy:\n${body.replace(/^/gm, '    ')}\n`;

describe('config: health', () => {
  it('takes the argv form or the http form, with defaults', () => {
    const a = parse(action('argv: ["true"]\nhealth: { argv: [curl, -fsS, "http://127.0.0.1/"] }')).actions
      .deploy!;
    expect(a.health).toEqual({
      argv: ['curl', '-fsS', 'http://127.0.0.1/'],
      timeout: 30_000,
      retries: 3,
      delay: 2000,
    });
    const b = parse(
      action(
        'argv: ["true"]\nhealth: { http: { url: "http://127.0.0.1:8080/healthz" }, retries: 5, delay: 500ms, timeout: 2s }',
      ),
    ).actions.deploy!;
    expect(b.health).toEqual({
      http: { url: 'http://127.0.0.1:8080/healthz', status: 200 },
      timeout: 2000,
      retries: 5,
      delay: 500,
    });
  });

  it('stagger.health uses the same schema (the http form works there too)', () => {
    const a = parse(
      action(
        'argv: ["true"]\nstagger: { group: g, interval: 1m, health: { http: { url: "https://dns.lan/", status: 204 } } }',
      ),
    ).actions.deploy!;
    expect(a.stagger?.health?.http).toEqual({ url: 'https://dns.lan/', status: 204 });
  });

  it.each<[string, string, RegExp]>([
    ['neither form', 'health: { retries: 2 }', /give exactly one of argv .* or http/],
    [
      'both forms',
      'health: { argv: ["true"], http: { url: "http://x/" } }',
      /give exactly one of argv .* or http/,
    ],
    [
      'a URL that is not http',
      'health: { http: { url: "file:///etc/passwd" } }',
      /is not an http:\/\/ or https:\/\/ URL — give e.g. http:/,
    ],
    [
      'no URL at all',
      'health: { http: { url: "not a url" } }',
      /is not an http:\/\/ or https:\/\/ URL — give e.g. http:/,
    ],
    ['a status out of range', 'health: { http: { url: "http://x/", status: 42 } }', /.+/],
    [
      'a param in the check',
      'params: { u: { type: string, pattern: "^[a-z]+$" } }\nrollback: [[echo, "{u}"]]\nhealth: { argv: [check, "{u}"] }',
      /a health check takes no params/,
    ],
    ['retries 0', 'health: { argv: ["true"], retries: 0 }', /.+/],
    ['unknown key', 'health: { argv: ["true"], url: "http://x/" }', /unknown key/],
  ])('rejects %s', (_, body, message) => {
    const issues = issuesOf(action(`argv: ["true"]\n${body}`));
    expect(issues.length).toBeGreaterThan(0);
    expect(issues.map((i) => i.message).join('\n')).toMatch(message);
    expect(issues.every((i) => i.path.startsWith('actions.deploy'))).toBe(true);
  });

  it.each<[string, string]>([
    ['health: { argv: curl }', 'actions.deploy.health.argv'],
    ['stagger: { group: g, interval: 1m, health: { argv: curl } }', 'actions.deploy.stagger.health.argv'],
    ['retry: 3', 'actions.deploy.retry'],
    ['params: { f: { type: path, roots: [/x], default: 5 } }', 'actions.deploy.params.f.default'],
  ])('a wrong shape (%s) is one issue at its path, not a crash of the cross-checks', (body, keyPath) => {
    expect(
      issuesOf(action(`argv: [x, "{f}"]\n${body}`))
        .filter((i) => !i.message.includes('{f}'))
        .map((i) => i.path),
    ).toEqual([keyPath]);
  });

  it('health and stagger.health together is one check too many, said where', () => {
    const issues = issuesOf(
      action(
        'argv: ["true"]\nhealth: { argv: ["true"] }\nstagger: { group: g, interval: 1m, health: { argv: ["true"] } }',
      ),
    );
    expect(issues).toEqual([
      { path: 'actions.deploy.stagger.health', message: expect.stringMatching(/give the health check once/) },
    ]);
  });

  it('a staggered deployment: its health gates the group (staggerOf)', () => {
    const c = parse(
      action('argv: ["true"]\nhealth: { argv: ["true"] }\nstagger: { group: g, interval: 1m }'),
    );
    expect(staggerOf(c.actions.deploy)?.health?.argv).toEqual(['true']);
    expect(staggerOf(parse(action('argv: ["true"]')).actions.deploy)).toBeUndefined();
  });
});

describe('config: rollback', () => {
  it('rollback steps may use the action params; a param used only there counts as used', () => {
    const c = parse(
      action(
        'argv: [deploy, "{tag}"]\nparams:\n  tag: { type: string, pattern: "^[a-z0-9.]+$" }\n  prev: { type: string, pattern: "^[a-z0-9.]+$", default: "1.0" }\nrollback: [[deploy, "{prev}"], [restart]]',
      ),
    );
    expect(c.actions.deploy!.rollback).toEqual([['deploy', '{prev}'], ['restart']]);
  });

  it.each<[string, string, string, RegExp]>([
    [
      'an undeclared param',
      'argv: ["true"]\nrollback: [[undo, "{nope}"]]',
      'actions.deploy.rollback.0.1',
      /\{nope\} is not a declared param/,
    ],
    [
      'a param as the executable',
      'argv: ["true", "{x}"]\nparams: { x: { type: string, pattern: "^[a-z]+$" } }\nrollback: [["{x}"]]',
      'actions.deploy.rollback.0.0',
      /the executable may not come from a param/,
    ],
    [
      'an empty list',
      'argv: ["true"]\nrollback: []',
      'actions.deploy.rollback',
      /at least one rollback step/,
    ],
    [
      'an empty step',
      'argv: ["true"]\nrollback: [[]]',
      'actions.deploy.rollback.0',
      /at least the executable/,
    ],
  ])('rejects %s', (_, body, keyPath, message) => {
    const issues = issuesOf(action(body));
    expect(issues.find((i) => i.path === keyPath)?.message).toMatch(message);
  });
});

describe('config: retry', () => {
  it('needs idempotent: true, said with how to fix it', () => {
    expect(issuesOf(action('argv: ["true"]\nretry: { attempts: 3 }'))).toEqual([
      {
        path: 'actions.deploy.retry',
        message: expect.stringMatching(
          /safe only when running it twice does no harm — if so, confirm with idempotent: true; otherwise remove retry/,
        ),
      },
    ]);
    const ok = parse(action('argv: ["true"]\nidempotent: true\nretry: { attempts: 3 }')).actions.deploy!;
    expect(ok.retry).toEqual({ attempts: 3, backoff: 5000 });
  });

  it('does not mix with rollback, and attempts is 2–10', () => {
    expect(
      issuesOf(action('argv: ["true"]\nidempotent: true\nrollback: [[undo]]\nretry: { attempts: 2 }'))[0]
        ?.message,
    ).toMatch(/retry and rollback do not mix/);
    expect(issuesOf(action('argv: ["true"]\nidempotent: true\nretry: { attempts: 1 }'))[0]).toMatchObject({
      path: 'actions.deploy.retry.attempts',
      message: /at least 2/,
    });
    expect(issuesOf(action('argv: ["true"]\nidempotent: true\nretry: { attempts: 11 }'))[0]?.path).toBe(
      'actions.deploy.retry.attempts',
    );
    expect(
      issuesOf(action('argv: ["true"]\nidempotent: true\nretry: { attempts: 2, backoff: soon }'))[0]?.path,
    ).toBe('actions.deploy.retry.backoff');
  });

  it.each<[number, number, number]>([
    [5000, 1, 5000],
    [5000, 2, 10_000],
    [5000, 3, 20_000],
    [60_000, 9, MAX_BACKOFF_MS],
  ])('backoff %i ms after %i failed attempt(s) waits %i ms', (base, n, want) => {
    expect(backoffMs(base, n)).toBe(want);
  });

  it.each<[string, string | undefined, boolean]>([
    ['failed', 'exit_nonzero', true],
    ['timed_out', 'timeout', true],
    ['failed', 'not_found', false],
    ['failed', 'sudo_failed', false],
    ['failed', 'invalid_params', false],
    ['interrupted', 'interrupted', false],
    ['succeeded', undefined, false],
  ])('a %s run (%s) is retried: %s', (status, code, want) => {
    expect(retryable({ status: status as 'failed', error_code: code as 'exit_nonzero' })).toBe(want);
  });
});

describe('path params: the text (core/paths.ts)', () => {
  const roots = ['/srv/logs', '/var/backups/app'];
  it.each<[string, string | RegExp]>([
    ['/srv/logs/app.log', '/srv/logs/app.log'],
    ['app.log', '/srv/logs/app.log'],
    ['sub/dir/app.log', '/srv/logs/sub/dir/app.log'],
    ['/var/backups/app/2024-01-01.tar', '/var/backups/app/2024-01-01.tar'],
    ['/srv/logs/./x//y', '/srv/logs/x/y'],
    ['../../etc/shadow', /may not contain "\.\."/],
    ['/srv/logs/../../etc/shadow', /may not contain "\.\."/],
    [
      '/srv/logs-evil/x',
      /outside the allowed roots — allowed: paths inside \/srv\/logs, \/var\/backups\/app/,
    ],
    ['/srv/logs', /outside the allowed roots/],
    ['/srv/logs/', /outside the allowed roots/],
    ['/etc/shadow', /outside the allowed roots/],
    ['/srv/logs/a\u0000b', /control character/],
    ['/srv/logs/a\nb', /control character/],
    ['-rf', /may not begin with "-"/],
    ['', /is empty/],
    [`/srv/logs/${'a'.repeat(4100)}`, /at most 4096/],
  ])('%j → %s', (value, want) => {
    const out = lexicalPath(value, roots);
    if (typeof want === 'string') expect(out).toEqual({ value: want });
    else expect('error' in out ? out.error : `accepted as ${out.value}`).toMatch(want);
  });

  it.each<[string, string, boolean]>([
    ['/srv/logs', '/srv/logs/a', true],
    ['/srv/logs', '/srv/logs/a/b', true],
    ['/srv/logs', '/srv/logs', false],
    ['/srv/logs', '/srv/logs-evil/a', false],
    ['/srv/logs', '/srv', false],
    ['/srv/logs', '/srv/logs/..x', true],
  ])('isInside(%s, %s) = %s', (root, p, want) => {
    expect(isInside(root, p)).toBe(want);
  });
});

describe('path params: config and resolution', () => {
  const yaml = action(
    'argv: [tail, -n, "200", "{file}"]\nparams:\n  file: { type: path, roots: [/srv/logs], default: app.log }\npattern: "^tail (?<file>\\\\S+)$"',
  );

  it('defaults must_exist to true and resolves a relative default inside the first root', () => {
    const c = parse(yaml);
    expect(c.actions.deploy!.params.file).toEqual({
      type: 'path',
      roots: ['/srv/logs'],
      must_exist: true,
      default: 'app.log',
    });
    const r = resolveRequest(
      {
        id: 'x',
        generatedId: false,
        press: false,
        action: 'deploy',
        params: {},
        command: undefined,
        timeoutMs: undefined,
        ts: undefined,
        ttl: undefined,
        sig: undefined,
        transaction: undefined,
      },
      c.actions,
      { sudo: false, timeoutMs: 30_000 },
    );
    expect(r.ok && r.job.commands).toEqual([['tail', '-n', '200', '/srv/logs/app.log']]);
  });

  it.each<[string, string, RegExp]>([
    ['roots missing', 'file: { type: path }', /roots/],
    ['roots empty', 'file: { type: path, roots: [] }', /at least one root/],
    ['a relative root', 'file: { type: path, roots: [logs] }', /absolute directory/],
    ['"/" as a root', 'file: { type: path, roots: ["/"] }', /confines nothing/],
    [
      'a default outside',
      'file: { type: path, roots: [/srv/logs], default: /etc/passwd }',
      /outside the allowed roots/,
    ],
    [
      'a default with ..',
      'file: { type: path, roots: [/srv/logs], default: ../x }',
      /may not contain "\.\."/,
    ],
  ])('rejects %s', (_, spec, message) => {
    const issues = issuesOf(action(`argv: [cat, "{file}"]\nparams:\n  ${spec}`));
    expect(issues.map((i) => `${i.path}: ${i.message}`).join('\n')).toMatch(message);
  });

  it('a button needs a default for a path param', () => {
    expect(
      issuesOf(
        action('argv: [cat, "{file}"]\nbutton: true\nparams:\n  file: { type: path, roots: [/srv/logs] }'),
      )[0],
    ).toMatchObject({ path: 'actions.deploy.button' });
  });

  it('a raw command and a request go through the same checks (NUL from JSON, traversal)', () => {
    const c = parse(yaml);
    const req = (params: Record<string, unknown>) =>
      resolveRequest(
        {
          id: 'x',
          generatedId: false,
          press: false,
          action: 'deploy',
          params,
          command: undefined,
          timeoutMs: undefined,
          ts: undefined,
          ttl: undefined,
          sig: undefined,
          transaction: undefined,
        },
        c.actions,
        { sudo: false, timeoutMs: 30_000 },
      );
    const nul = req(JSON.parse('{"file":"/srv/logs/a\\u0000/../../etc/shadow"}') as Record<string, unknown>);
    expect(!nul.ok && nul.rejection).toMatchObject({
      code: 'invalid_params',
      error: expect.stringMatching(/param "file" contains a control character/),
    });
    const up = req({ file: '../../etc/shadow' });
    expect(!up.ok && up.rejection.code).toBe('invalid_params');
    expect(!req({ file: 42 }).ok).toBe(true);
  });
});

describe('path params: the file system (exec/confine.ts)', () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'hc-confine-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const root = path.join(base, 'logs');
  const evil = path.join(base, 'logs-evil');
  const outside = path.join(base, 'secret');
  mkdirSync(root);
  mkdirSync(evil);
  mkdirSync(outside);
  writeFileSync(path.join(root, 'app.log'), 'x');
  writeFileSync(path.join(evil, 'x.log'), 'x');
  writeFileSync(path.join(outside, 'shadow'), 'x');
  symlinkSync(path.join(outside, 'shadow'), path.join(root, 'escape.log'));
  symlinkSync(outside, path.join(root, 'dirlink'));
  symlinkSync(path.join(root, 'app.log'), path.join(root, 'inside.log'));
  symlinkSync(path.join(outside, 'new-file'), path.join(root, 'dangling'));
  // A root that is itself a symlink is resolved too: values inside its target count as inside.
  symlinkSync(root, path.join(base, 'logs-link'));

  const spec = (roots: string[], mustExist = true) => ({
    argv: ['cat', '{file}'],
    params: { file: { type: 'path' as const, roots, must_exist: mustExist } },
  });
  const job = (file: string): Job => ({
    action: 'show',
    params: { file },
    commands: [['cat', file]],
    sudo: false,
    timeoutMs: 1000,
    actionTimeoutMs: 1000,
    env: {},
    limits: undefined,
  });
  const run = (file: string, roots = [root], mustExist = true) =>
    confinePaths(job(file), spec(roots, mustExist));

  it('an existing file inside: the resolved path goes into argv', () => {
    expect(run(path.join(root, 'app.log'))).toMatchObject({
      ok: true,
      job: { commands: [['cat', path.join(root, 'app.log')]] },
    });
  });

  it('a symlink inside the root to a file inside is allowed, and replaced by its target', () => {
    expect(run(path.join(root, 'inside.log'))).toMatchObject({
      ok: true,
      job: {
        commands: [['cat', path.join(root, 'app.log')]],
        params: { file: path.join(root, 'inside.log') },
      },
    });
  });

  it.each<[string, string, RegExp]>([
    [
      'a symlink to a file outside',
      'escape.log',
      /resolves to .*secret\/shadow, outside the allowed roots \(symlinks are followed\) — allowed: paths inside/,
    ],
    ['a file through a symlinked directory', 'dirlink/shadow', /outside the allowed roots/],
    ['a missing file (must_exist)', 'nope.log', /does not exist/],
  ])('refuses %s', (_, name, message) => {
    const out = run(path.join(root, name));
    expect(out.ok).toBe(false);
    expect(!out.ok && out.rejection).toMatchObject({
      code: 'invalid_params',
      error: expect.stringMatching(message),
    });
    expect(!out.ok && out.rejection.error).toMatch(/^param "file" /);
  });

  it('a sibling directory with a shared prefix is outside (/srv/logs vs /srv/logs-evil)', () => {
    const out = run(path.join(evil, 'x.log'));
    expect(!out.ok && out.rejection.error).toMatch(/outside the allowed roots/);
  });

  it('must_exist: false takes a new name in an existing directory, never a dangling symlink', () => {
    expect(run(path.join(root, 'new.log'), [root], false)).toMatchObject({
      ok: true,
      job: { commands: [['cat', path.join(root, 'new.log')]] },
    });
    const dangling = run(path.join(root, 'dangling'), [root], false);
    expect(!dangling.ok && dangling.rejection.error).toMatch(/symlink to a missing target/);
    const noDir = run(path.join(root, 'nodir', 'new.log'), [root], false);
    expect(!noDir.ok && noDir.rejection.error).toMatch(/directory .* does not exist/);
  });

  it('a root given through a symlink, and a root missing on this host', () => {
    expect(run(path.join(root, 'app.log'), [path.join(base, 'logs-link')]).ok).toBe(true);
    const none = run(path.join(root, 'app.log'), [path.join(base, 'not-here')]);
    expect(!none.ok && none.rejection.error).toMatch(/none of its roots .* exists on this host/);
  });
});

describe('result shape', () => {
  it('keeps the stable key order with the new fields', () => {
    const r = makeResult(
      'h',
      { id: 'i', action: 'a', transaction: 't' },
      {
        status: 'failed',
        error_code: 'rolled_back',
        note: 'n',
        attempts: [{ attempt: 1, status: 'failed', exit_code: 1, duration_ms: 1 }],
        rollback: { status: 'succeeded', steps: [] },
        health: { passed: false, attempts: 1, exit_code: 1, output: '', tries: [] },
        steps: [],
      },
    );
    expect(Object.keys(r)).toEqual([
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
      'steps',
      'health',
      'rollback',
      'attempts',
      'note',
      'transaction',
    ]);
  });
});

describe('sudoers, explain and check-config see the rollback', () => {
  const yaml = `execution: { enabled: true, path: /usr/bin:/bin }\nsecurity: { deny: ["^evil"] }\n${action('steps: [["true"], [echo, "{tag}"]]\nsudo: true\ntimeout: 1m\nparams:\n  tag: { type: string, pattern: "^[a-z0-9.]+$" }\nhealth: { http: { url: "http://127.0.0.1:9/healthz" }, retries: 2, delay: 1s }\nrollback: [[echo, "undo", "{tag}"]]')}`;

  it('sudoers has a line for each rollback step of a sudo action', () => {
    const lines = sudoersLines(parse(yaml), 'hc');
    expect(lines).toContain('# action deploy (rollback)');
    expect(lines.some((l) => /NOPASSWD: .*timeout .*\/echo undo \*$/.test(l))).toBe(true);
    expect(lines.filter((l) => l.includes('NOPASSWD'))).toHaveLength(3);
  });

  it('explain shows the health check and the rollback', () => {
    const { lines, accepted } = explain(parse(yaml), '{"action":"deploy","params":{"tag":"1.2"}}');
    expect(accepted).toBe(true);
    const text = lines.join('\n');
    expect(text).toMatch(
      /^health: +GET http:\/\/127\.0\.0\.1:9\/healthz must answer 200; 2 tries, 1s apart, 30s each$/m,
    );
    expect(text).toMatch(/^rollback 1: \[.*\/echo","undo","1\.2"\]$/m);
    expect(text).toMatch(/its own budget of 1m/);
  });

  it('the deny-list covers rollback steps, in check-config and at request time', () => {
    const denied = parse(
      `security: { deny: ["^rm -rf /srv"] }\n${action('argv: ["true"]\nrollback: [[rm, -rf, /srv/data]]')}`,
    );
    expect(configWarnings(denied)).toEqual([
      expect.stringMatching(/^actions\.deploy: its command matches the deny-list/),
    ]);
    expect(explain(denied, '{"action":"deploy"}').lines[0]).toBe('refused: denied');
  });
});
