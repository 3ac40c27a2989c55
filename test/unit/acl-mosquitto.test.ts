import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aclVerb, mosquittoAcl, mosquittoGrants, mosquittoPasswd } from '../../src/cli/acl.js';
import { grantsFor, mayPublish, topicMatches, type AclContext, type Role } from '../../src/broker/acl.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, UsageError } from '../../src/errors.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'homelab-cmd-acl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, 'a.pw'), 'secret-from-file\n');
const YAML = `
mqtt: { prefix: lab/home }
discovery: { prefix: ha }
broker:
  users:
    - { username: agent-a, password_file: a.pw, role: agent, host: a }
    - { username: agent-b, password: "inline-b's", role: agent, host: b }
    - { username: Home Assistant, password: inline-ctl, role: controller }
`;
const configFile = path.join(dir, 'broker.yaml');
writeFileSync(configFile, YAML);
const config = parseConfig(YAML, configFile, {});
const ctx: AclContext = { prefix: 'lab/home', discoveryPrefix: 'ha' };

// Topics an agent or a controller might touch: the contract's table for two hosts, and attacks.
const HOSTS = ['a', 'b'];
const CORPUS = [
  ...HOSTS.flatMap((h) => [
    `lab/home/${h}/cmd`,
    `lab/home/${h}/cmd/restart`,
    `lab/home/${h}/cmd/x/y`,
    `lab/home/${h}/result`,
    `lab/home/${h}/result/id-1`,
    `lab/home/${h}/result/id-1/x`,
    `lab/home/${h}/status`,
    `lab/home/${h}/heartbeat`,
    `lab/home/${h}/output/id-1`,
    `lab/home/${h}/reply/cli/1`,
    `lab/home/${h}/param/act/p`,
    `lab/home/${h}/probe/admin_page`,
    `lab/home/${h}/param/act/p/set`,
    `lab/home/${h}/param/act`,
    `lab/home/${h}`,
    `lab/home/${h}/other`,
    `ha/button/${h}/restart/config`,
    `ha/sensor/${h}/last_result/config`,
  ]),
  'lab/home/_fleet/stagger/dns',
  ...HOSTS.map((h) => `lab/home/_fleet/stagger/dns/last/${h}`),
  'lab/home/_reply/cli/1',
  'lab/home/+/reply/cli/1',
  'ha/status',
  'lab/home',
  'lab/other/a/status',
  'elsewhere',
  '$SYS/broker/version',
];
/** Everything an agent publishes for host h (docs/mqtt-api.md § Topics, "from agent" rows). */
const agentPublishes = (h: string) => [
  `lab/home/${h}/result/id-1`,
  `lab/home/${h}/result`,
  `lab/home/${h}/status`,
  `lab/home/${h}/heartbeat`,
  `lab/home/${h}/output/id-1`,
  `lab/home/${h}/param/act/p`,
  `lab/home/_fleet/stagger/dns/last/${h}`,
  `lab/home/_fleet/stagger/dns/claim/${h}`,
  `lab/home/_fleet/stagger/dns/member/${h}`,
  `ha/button/${h}/restart/config`,
  `ha/sensor/${h}/last_result/config`,
  `lab/home/${h}/reply/cli/1`,
];

describe('mosquittoGrants: the contract roles as acl_file topics', () => {
  const roles: [string, Role][] = [
    ['agent a', { role: 'agent', host: 'a' }],
    ['controller', { role: 'controller' }],
  ];

  it.each(roles)('%s: reads exactly what the embedded broker lets it read', (_label, role) => {
    const g = mosquittoGrants(
      role.role === 'agent' ? { role: 'agent', host: role.host } : { role: 'controller' },
      ctx,
    );
    expect(g.read).toEqual(grantsFor(role, ctx).read);
  });

  it.each(roles)('%s: writes only what the embedded broker lets it write', (_label, role) => {
    const g = mosquittoGrants(
      role.role === 'agent' ? { role: 'agent', host: role.host } : { role: 'controller' },
      ctx,
    );
    for (const topic of CORPUS) {
      if (g.write.some((f) => topicMatches(f, topic))) expect(mayPublish(role, topic, ctx), topic).toBe(true);
    }
  });

  it('an agent can publish everything it publishes, and never a command or a param set', () => {
    const g = mosquittoGrants({ role: 'agent', host: 'a' }, ctx);
    const may = (t: string) => g.write.some((f) => topicMatches(f, t));
    for (const t of agentPublishes('a')) expect(may(t), t).toBe(true);
    for (const t of [
      'lab/home/a/cmd',
      'lab/home/a/cmd/restart',
      'lab/home/a/param/act/p/set',
      'lab/home/b/status',
      'ha/button/b/x/config',
      'ha/status',
      'lab/home/_fleet/stagger/dns/last/b',
      'lab/home/_fleet/stagger/dns',
    ]) {
      expect(may(t), t).toBe(false);
    }
  });
});

describe('mosquittoAcl', () => {
  const text = mosquittoAcl(config);
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

  it('grants nothing before the first user line (anonymous clients get nothing)', () => {
    expect(lines[0]).toBe('user agent-a');
  });

  it('has one block per user, with its grants as topic read / topic write lines', () => {
    expect(lines.filter((l) => l.startsWith('user '))).toEqual([
      'user agent-a',
      'user agent-b',
      'user Home Assistant',
    ]);
    expect(lines).toContain('topic write lab/home/b/param/+/+');
    expect(lines).toContain('topic write ha/+/b/#');
    expect(lines.every((l) => /^(user .+|topic (read|write) [^ ]+)$/.test(l))).toBe(true);
    const ctlBlock = lines.slice(lines.indexOf('user Home Assistant') + 1);
    expect(ctlBlock).toEqual([
      'topic read #',
      'topic write lab/home/+/cmd/#',
      'topic write lab/home/+/param/+/+/set',
      'topic write ha/status',
    ]);
  });

  it('never contains a password', () => {
    expect(text).not.toMatch(/secret-from-file|inline-b|inline-ctl/);
  });

  it.each([
    ['a ":" (the password file separator)', 'agent:a'],
    ['a newline', 'agent\na'],
    ['a surrounding blank', ' agent-a'],
  ])('refuses a username with %s', (_label, username) => {
    const bad = parseConfig(
      `broker: { users: [{ username: ${JSON.stringify(username)}, password: x, role: controller }] }`,
      configFile,
      {},
    );
    expect(() => mosquittoAcl(bad)).toThrow(ConfigError);
    expect(() => mosquittoAcl(bad)).toThrow(/broker\.users\.0\.username/);
  });

  it('refuses a config without broker users, saying what to add', () => {
    expect(() => mosquittoAcl(parseConfig('host: x', configFile, {}))).toThrow(
      /broker\.users: no users to grant/,
    );
  });
});

describe('mosquittoPasswd', () => {
  it('reads password files in the shell and hides inline passwords unless --reveal', () => {
    const script = mosquittoPasswd(config, { passwdFile: '/etc/mosquitto/passwd', reveal: false });
    expect(script).toContain(
      `mosquitto_passwd -b '/etc/mosquitto/passwd' 'agent-a' "$(cat '${path.join(dir, 'a.pw')}')"`,
    );
    expect(script).toContain(
      "mosquitto_passwd -b '/etc/mosquitto/passwd' 'Home Assistant' '<password of Home Assistant: broker.users.2.password>'",
    );
    expect(script).not.toMatch(/secret-from-file|inline-b|inline-ctl/);
    expect(script).toMatch(/2 password\(s\) are inline in the config and not shown/);
  });

  it('with reveal, prints inline passwords quoted for sh', () => {
    const script = mosquittoPasswd(config, { passwdFile: "/tmp/o'dd", reveal: true });
    expect(script).toContain("mosquitto_passwd -b '/tmp/o'\\''dd' 'agent-b' 'inline-b'\\''s'");
    expect(script).not.toMatch(/secret-from-file/);
  });
});

describe('aclVerb', () => {
  afterEach(() => vi.restoreAllMocks());
  const run = async (argv: string[]) => {
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation(
      (chunk: string | Uint8Array) => ((stdout += String(chunk)), true),
    );
    const code = await aclVerb.run(argv);
    return { code, stdout };
  };

  it('prints the acl_file', async () => {
    const { code, stdout } = await run(['--config', configFile]);
    expect(code).toBe(0);
    expect(stdout).toBe(mosquittoAcl(config));
  });

  it('prints the password script with --passwords', async () => {
    const { code, stdout } = await run(['--config', configFile, '--passwords', '--passwd-file', '/x/passwd']);
    expect(code).toBe(0);
    expect(stdout).toBe(mosquittoPasswd(config, { passwdFile: '/x/passwd', reveal: false }));
  });

  it.each([
    [[], /--config is required/],
    [['--config', configFile, '--reveal'], /go with --passwords/],
    [['--config', configFile, '--bogus'], /Unknown option/],
  ])('%j is a usage error', async (argv, message) => {
    await expect(aclVerb.run(argv)).rejects.toThrow(UsageError);
    await expect(aclVerb.run(argv)).rejects.toThrow(message);
  });
});
