import { describe, it, expect } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { grantsFor, mayPublish, topicMatches, type AclContext, type Role } from '../../src/broker/acl.js';
import { parseConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/core/duration.js';
import { assignments, unitEnvironment } from '../helpers/systemd-env.js';

// docker/ and packaging/, checked statically: no Docker engine or systemd runs in CI. What this
// cannot check (the image builds, the containers start, the unit starts) is listed in
// docs/install.md. Paths, ports, commands, rights and timeouts must agree with the contract,
// with CI and with each other.

const REPO = path.resolve(import.meta.dirname, '../..');
const DOCKER = path.join(REPO, 'docker');
const read = (rel: string): string => readFileSync(path.join(REPO, rel), 'utf8');

type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// docker/compose.yaml

const composeDoc = parseDocument(read('docker/compose.yaml'), { uniqueKeys: true, prettyErrors: true });
const compose = (composeDoc.errors.length === 0 ? composeDoc.toJS() : {}) as Obj;
const services = (compose.services ?? {}) as Record<string, Obj>;
const service = (name: string): Obj => {
  const s = services[name];
  if (!s) throw new Error(`docker/compose.yaml has no service "${name}"`);
  return s;
};

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
  /** A named volume (no path), or a bind mount of a path relative to docker/. */
  named: boolean;
}

/** Short syntax `SRC:DST[:ro]`, the form compose.yaml uses. */
function mounts(svc: Obj): Mount[] {
  return ((svc.volumes ?? []) as unknown[]).map((v) => {
    if (typeof v !== 'string') throw new Error(`use the short volume syntax: ${JSON.stringify(v)}`);
    const [source = '', target = '', mode = ''] = v.split(':');
    return { source, target, readOnly: mode.split(',').includes('ro'), named: !/^[./]/.test(source) };
  });
}
const bindSource = (m: Mount): string => path.resolve(DOCKER, m.source);
const mountAt = (svc: Obj, target: string): Mount | undefined => mounts(svc).find((m) => m.target === target);

/** `mosquitto.conf`: directive → values, in order. */
function parseMosquittoConf(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [key = '', ...rest] = line.split(/\s+/);
    out.set(key, [...(out.get(key) ?? []), rest.join(' ')]);
  }
  return out;
}
const mosquittoConf = parseMosquittoConf(read('docker/mosquitto/mosquitto.conf'));
const conf1 = (key: string): string | undefined => mosquittoConf.get(key)?.[0];

// ---------------------------------------------------------------------------------------------
// docker/Dockerfile

interface Instruction {
  op: string;
  args: string;
  stage: string;
}

/** Instructions with line continuations joined and comments dropped, each tagged with its stage. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue; // a comment, also inside a continued instruction
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    if (full !== '') logical.push(full);
  }
  let stage = '';
  return logical.map((l) => {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(l) ?? [];
    if (op.toUpperCase() === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? args;
    return { op: op.toUpperCase(), args, stage };
  });
}
const dockerfile = parseDockerfile(read('docker/Dockerfile'));
const inStage = (stage: string, op: string) => dockerfile.filter((i) => i.stage === stage && i.op === op);
const runCommands = (stage: string): string[] =>
  inStage(stage, 'RUN').flatMap((i) => i.args.split(/\s*&&\s*/));
const execForm = (op: string): unknown => {
  const i = dockerfile.filter((x) => x.op === op).at(-1);
  return i ? (JSON.parse(i.args.replace(/^CMD\s+/, '')) as unknown) : undefined;
};
const words = (cmd: string): string[] => cmd.trim().split(/\s+/);

/** The flags CI gives `npm ci` (.ci/run), so the image installs exactly as CI does. */
const ciNpmCi = /^\s*npm ci\b(.*)$/m.exec(read('.ci/run'));
const pkg = JSON.parse(read('package.json')) as {
  scripts: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies: Record<string, string>;
  files: string[];
  bin: Record<string, string>;
};

// ---------------------------------------------------------------------------------------------
// docker/agent.yaml: the config compose mounts, loaded the way the agent loads it.

const AGENT_TARGET = '/etc/homelab-cmd/agent.yaml';
const agentMount = () => {
  const m = mountAt(service('agent'), AGENT_TARGET);
  if (!m) throw new Error(`the agent service mounts nothing at ${AGENT_TARGET}`);
  return m;
};
const agentConfig = () =>
  parseConfig(readFileSync(bindSource(agentMount()), 'utf8'), bindSource(agentMount()), {});

describe('docker/compose.yaml', () => {
  it('parses as YAML, without duplicate keys, with the services mosquitto and agent', () => {
    expect(composeDoc.errors.map((e) => e.message)).toEqual([]);
    expect(composeDoc.warnings.map((w) => w.message)).toEqual([]);
    expect(Object.keys(services).sort()).toEqual(['agent', 'mosquitto']);
  });

  it('runs Eclipse Mosquitto 2 (MQTT 5, which Home Assistant needs from 2027.1)', () => {
    expect(service('mosquitto').image).toBe('eclipse-mosquitto:2');
  });

  it.each(['mosquitto', 'agent'])(
    '%s: every bind-mounted path exists in the repository, every named volume is declared',
    (name) => {
      const declared = Object.keys((compose.volumes ?? {}) as Obj);
      for (const m of mounts(service(name))) {
        if (m.named) expect(declared, m.source).toContain(m.source);
        else expect(existsSync(bindSource(m)), `${m.source} (from docker/)`).toBe(true);
        expect(m.target, 'mount targets are absolute').toMatch(/^\//);
      }
    },
  );

  it('builds the agent from docker/Dockerfile with the repository as context', () => {
    const build = service('agent').build as Obj;
    const context = path.resolve(DOCKER, String(build.context));
    expect(context).toBe(REPO);
    expect(existsSync(path.join(context, String(build.dockerfile)))).toBe(true);
  });

  it("publishes 1883, the port of the contract's default mqtt.url, on which mosquitto.conf listens", () => {
    expect(service('mosquitto').ports).toEqual(['1883:1883']);
    expect(mosquittoConf.get('listener')).toEqual(['1883']);
    expect(new URL(parseConfig('', '/nonexistent/agent.yaml', {}).mqtt.url).port).toBe('1883');
  });

  it('mounts mosquitto.conf where the image reads it, and every file it names', () => {
    const m = service('mosquitto');
    expect(mountAt(m, '/mosquitto/config/mosquitto.conf')?.source).toBe('./mosquitto/mosquitto.conf');
    for (const key of ['password_file', 'acl_file']) {
      const target = conf1(key);
      expect(target, key).toBeDefined();
      const mount = mountAt(m, target!);
      expect(mount, `${key} ${target} is not mounted`).toBeDefined();
      expect(existsSync(bindSource(mount!))).toBe(true);
    }
    const data = conf1('persistence_location')!.replace(/\/$/, '');
    expect(mountAt(m, data)?.named, 'persistence on a named volume').toBe(true);
  });

  it("agent: mounts its config at the path the image's CMD reads, and nothing else of the repo but the password file", () => {
    const binds = mounts(service('agent')).filter((m) => !m.named);
    expect(binds.every((m) => m.readOnly)).toBe(true);
    expect(binds.map((m) => m.target).sort()).toEqual(
      [
        path.posix.join(path.posix.dirname(AGENT_TARGET), agentConfig().mqtt.password_file!),
        AGENT_TARGET,
      ].sort(),
    );
  });

  it('agent: stops gracefully — tini reaps orphans, and Docker waits longer than execution.shutdown_grace', () => {
    const agent = service('agent');
    expect(agent.init).toBe(true);
    const grace = parseDuration(String(agent.stop_grace_period));
    expect(grace).toBeGreaterThan(agentConfig().execution.shutdown_grace);
  });

  it('agent: only the capabilities that switch to the run user (no sudo in the container), a read-only root with a tmpfs /tmp for command work dirs', () => {
    const agent = service('agent');
    expect(agent.cap_drop).toEqual(['ALL']);
    // Each one shown needed by running the agent as root with only these (docs/security.md § In a container):
    // without CHOWN or DAC_OVERRIDE no action starts, without KILL a timeout cannot stop the run user's command.
    expect([...((agent.cap_add as string[] | undefined) ?? [])].sort()).toEqual(
      ['CHOWN', 'DAC_OVERRIDE', 'KILL', 'SETGID', 'SETUID'].sort(),
    );
    expect(agent.security_opt).toContain('no-new-privileges:true');
    expect(agent.read_only).toBe(true);
    expect(agent.tmpfs).toContain('/tmp');
  });
});

describe('docker/agent.yaml, the config compose mounts', () => {
  it('passes parseConfig (password_file included, resolved as in the container)', () => {
    expect(() => agentConfig()).not.toThrow();
  });

  it('connects to the mosquitto service on the port mosquitto listens on, with a username', () => {
    const c = agentConfig();
    const url = new URL(c.mqtt.url);
    expect(url.protocol).toBe('mqtt:');
    expect(Object.keys(services)).toContain(url.hostname);
    expect(url.port).toBe(mosquittoConf.get('listener')![0]);
    expect(c.mqtt.username).toBeDefined();
  });

  it('reads its password from a mounted file: the container path and the repository path are the same file', () => {
    const c = agentConfig();
    const file = c.mqtt.password_file!;
    expect(path.isAbsolute(file), 'relative, so it resolves against the config file in both places').toBe(
      false,
    );
    const inContainer = path.posix.join(path.posix.dirname(AGENT_TARGET), file);
    const mount = mountAt(service('agent'), inContainer);
    expect(mount, `${inContainer} is not mounted`).toBeDefined();
    expect(bindSource(mount!)).toBe(path.resolve(path.dirname(bindSource(agentMount())), file));
  });

  it("names its host (a container hostname is a random id) and keeps state_dir on the image's volume", () => {
    const c = agentConfig();
    expect(parseDocument(readFileSync(bindSource(agentMount()), 'utf8')).get('host')).toBe(c.host);
    expect(c.state_dir).toBe('/var/lib/homelab-cmd');
    expect(mountAt(service('agent'), c.state_dir)?.named).toBe(true);
    expect(
      inStage('runtime', 'VOLUME')
        .map((i) => i.args)
        .join(' '),
    ).toContain(c.state_dir);
  });
});

describe('docker/Dockerfile', () => {
  it('has a build stage and a runtime stage, both on Node 22 (LTS) slim or alpine', () => {
    const froms = dockerfile.filter((i) => i.op === 'FROM');
    expect(froms.map((f) => f.stage)).toEqual(['build', 'runtime']);
    for (const f of froms) expect(f.args).toMatch(/^node:22-(slim|alpine)\b/);
  });

  it("build stage: the commands CI runs — npm ci with CI's flags, then npm run build", () => {
    expect(ciNpmCi, '.ci/run runs npm ci').not.toBeNull();
    const ciFlags = words(ciNpmCi![1]!);
    const cmds = runCommands('build');
    const ci = cmds.filter((c) => /^npm ci\b/.test(c));
    expect(ci).toHaveLength(1);
    expect(words(ci[0]!)).toEqual(expect.arrayContaining(ciFlags));
    expect(cmds).toContain('npm run build');
    expect(cmds.indexOf('npm run build')).toBeGreaterThan(cmds.indexOf(ci[0]!));
    // The bundle is built from the patched aedes (patches/): npm ci's postinstall, run by name here.
    expect(cmds[cmds.indexOf(ci[0]!) + 1]).toBe('npx patch-package --error-on-fail');
    expect(pkg.scripts.postinstall).toContain('patch-package --error-on-fail');
    // Then the package npm publishes: `npm pack` runs prepack, which bundles.
    expect(cmds.at(-1)).toBe('npm pack --pack-destination /pkg');
    expect(pkg.scripts.prepack).toBe('node scripts/bundle.mjs');
    // CI's `npm ci` builds through `prepare` (skipped only when dist/ is newer than every input:
    // scripts/dist-fresh.mjs); the image builds explicitly. Same build either way.
    expect(pkg.scripts.prepare).toBe('node scripts/dist-fresh.mjs || npm run build');
    // And `npm test` builds in vitest's globalSetup (test/global-build.ts) when a source is newer.
    expect(pkg.scripts.test).toMatch(/^vitest run\b/);
    expect(read('vitest.config.ts')).toContain('test/global-build.ts');
  });

  it('build stage: --ignore-scripts skips only our prepare — no dependency has an install script', () => {
    const ci = runCommands('build').find((c) => /^npm ci\b/.test(c))!;
    if (words(ci).includes('--ignore-scripts')) {
      const lock = JSON.parse(read('package-lock.json')) as {
        packages: Record<string, { hasInstallScript?: boolean }>;
      };
      // Dependencies whose install script is denied on purpose (npm 11 runs none that package.json's
      // allowScripts does not allow), each with the script it would run and why it is not needed.
      const denied: Record<string, { script: string; runs: string; has: string }> = {
        // classic-level (the broker's disk state) ships its binding prebuilt in the package; its install
        // script only checks that a prebuild loads, which node-gyp-build does again at require time.
        'node_modules/classic-level': {
          script: 'install',
          runs: 'node-gyp-build',
          has: 'prebuilds/linux-x64/classic-level.node',
        },
        // esbuild (the bundler, scripts/bundle.mjs): its postinstall only checks the binary that its
        // platform package (@esbuild/linux-x64, an optional dependency) already holds.
        'node_modules/esbuild': {
          script: 'postinstall',
          runs: 'node install.js',
          has: '../@esbuild/linux-x64/bin/esbuild',
        },
      };
      const prebuilt = Object.keys(denied);
      for (const [name, d] of Object.entries(denied)) {
        const manifest = JSON.parse(read(`${name}/package.json`)) as { scripts: Record<string, string> };
        expect(manifest.scripts[d.script]).toBe(d.runs);
        expect(existsSync(path.join(REPO, name, d.has))).toBe(true);
      }
      // npm 11 skips dependency install scripts unless package.json allows them: the ones above are
      // denied on purpose (they work without), so `npm ci` says nothing about them.
      const allow = (JSON.parse(read('package.json')) as { allowScripts?: Record<string, boolean> })
        .allowScripts;
      expect(allow).toEqual(Object.fromEntries(prebuilt.map((n) => [n.replace('node_modules/', ''), false])));
      const withScripts = Object.entries(lock.packages)
        .filter(([name, p]) => name !== '' && p.hasInstallScript && !prebuilt.includes(name))
        .map(([name]) => name);
      expect(withScripts, 'drop --ignore-scripts from the build stage').toEqual([]);
    }
  });

  it('runtime stage: the tarball `npm pack` made, installed with npm install -g; no build, no other install', () => {
    const cmds = runCommands('runtime');
    expect(cmds.filter((c) => /\bnpm (ci|install|i)\b/.test(c))).toEqual([
      'npm install -g --offline --no-audit --no-fund /tmp/pkg/homelab-cmd-*.tgz',
    ]);
    expect(cmds.some((c) => /npm run build|\btsc\b|\bnpm ci\b/.test(c))).toBe(false);
    expect(inStage('runtime', 'COPY').map((i) => i.args)).toEqual(['--from=build /pkg /tmp/pkg']);
    // The image runs from where that install puts the package (node:22-slim's npm prefix is /usr/local).
    expect(inStage('runtime', 'WORKDIR').map((i) => i.args)).toEqual([
      '/usr/local/lib/node_modules/homelab-cmd',
    ]);
    // What the image ships is what npm publishes (package.json "files"): the bundle, not dist/.
    for (const dir of ['bin/', 'bundle/', 'config/']) expect(pkg.files).toContain(dir);
    expect(pkg.files).not.toContain('dist/');
    // The build stage copies every directory the package publishes.
    const copied = inStage('build', 'COPY').map((i) => words(i.args)[0]);
    for (const f of pkg.files.filter((f) => f !== 'bundle/')) expect(copied).toContain(f.replace(/\/$/, ''));
  });

  it('the package has no runtime dependencies: everything it runs is in bundle/ (docs/performance.md § The published package)', () => {
    // A dependency added to "dependencies" would be installed beside the bundle and never used:
    // add it to devDependencies, and scripts/bundle.mjs bundles it.
    expect(pkg.dependencies ?? {}).toEqual({});
    for (const dep of ['aedes', 'mqtt', 'zod', 'classic-level'])
      expect(pkg.devDependencies).toHaveProperty(dep);
  });

  it('every COPY from the build context exists in the repository', () => {
    for (const i of dockerfile.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
      const sources = words(i.args).slice(0, -1);
      for (const s of sources) expect(existsSync(path.join(REPO, s)), `${i.stage}: COPY ${s}`).toBe(true);
    }
  });

  // Root in the container, on purpose: only root can start a command as another user where there is no
  // sudo, and Docker's cap_add gives a non-root process no effective capabilities (no ambient set).
  // What keeps that root small is compose.yaml's cap_drop/cap_add and no-new-privileges (tested above);
  // what keeps the commands apart from it is the run user (docs/security.md § In a container).
  it('runs the agent as root, and creates the run user that docker/agent.yaml names in execution.run_as', () => {
    const users = inStage('runtime', 'USER').map((i) => i.args);
    expect(users).toEqual(['root']);
    const runAs = agentConfig().execution.run_as;
    expect(runAs).toBe('homelab-cmd-run');
    const useradd = runCommands('runtime').find((c) => /\buseradd\b/.test(c) && c.includes(String(runAs)));
    expect(useradd, `no useradd of ${String(runAs)}`).toBeDefined();
    // A fixed uid no host account is likely to share, no home, no login shell.
    expect(useradd).toMatch(/--uid 10002\b/);
    expect(useradd).toMatch(/--no-create-home\b/);
    expect(useradd).toMatch(/--shell \/usr\/sbin\/nologin\b/);
    // It is in no group but its own.
    expect(useradd).not.toMatch(/(-G|--groups)\b/);
  });

  it("keeps state_dir root's and 0700 in the image, so the volume the run user cannot list starts that way", () => {
    const cmds = runCommands('runtime');
    expect(cmds).toContain('chmod 0700 /var/lib/homelab-cmd');
    expect(cmds.some((c) => /^chown root:root .*\/var\/lib\/homelab-cmd\b/.test(c))).toBe(true);
    // Nothing in the image is given to the run user.
    expect(cmds.filter((c) => /\bchown\b/.test(c) && c.includes('homelab-cmd-run'))).toEqual([]);
  });

  it('has a HEALTHCHECK whose script is bundled from docker/healthcheck.js, which imports only what the bundle can hold', () => {
    const hc = inStage('runtime', 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    const cmd = JSON.parse(hc[0]!.args.replace(/^.*?\bCMD\s+/, '')) as string[];
    expect(cmd[0]).toBe('node');
    // bundle/healthcheck.js, which scripts/bundle.mjs builds from docker/healthcheck.js.
    expect(cmd[1]).toBe('bundle/healthcheck.js');
    expect(read('scripts/bundle.mjs')).toContain("healthcheck: 'docker/healthcheck.js'");
    const script = 'docker/healthcheck.js';
    expect(cmd[2], 'the same config as CMD').toBe(AGENT_TARGET);
    const text = read(script);
    for (const [, spec] of text.matchAll(/^import .* from '([^']+)';$/gm)) {
      if (spec!.startsWith('node:')) continue;
      if (spec!.startsWith('.')) {
        // ../dist/x.js is built from src/x.ts
        const built = path.resolve(path.dirname(path.join(REPO, script)), spec!);
        const source = path
          .join(REPO, 'src', path.relative(path.join(REPO, 'dist'), built))
          .replace(/\.js$/, '.ts');
        expect(existsSync(source), `${spec} is built from ${path.relative(REPO, source)}`).toBe(true);
      } else {
        expect(Object.keys(pkg.devDependencies), `${spec} must be installed to be bundled`).toContain(spec);
      }
    }
    expect(text).toContain("import { loadConfig } from '../dist/config/load.js';");
  });

  it('ENTRYPOINT runs the bin, CMD runs the agent with the mounted config, state_dir is a VOLUME', () => {
    expect(execForm('ENTRYPOINT')).toEqual(['node', pkg.bin['homelab-cmd']]);
    expect(execForm('CMD')).toEqual(['agent', '--config', AGENT_TARGET]);
    expect(
      inStage('runtime', 'VOLUME')
        .map((i) => JSON.parse(i.args) as string[])
        .flat(),
    ).toContain('/var/lib/homelab-cmd');
  });
});

// ---------------------------------------------------------------------------------------------
// docker/mosquitto/acl against src/broker/acl.ts

type Access = 'read' | 'write' | 'readwrite' | 'deny';
interface AclEntry {
  access: Access;
  topic: string;
}
interface MosquittoAcl {
  anonymous: AclEntry[];
  users: Map<string, AclEntry[]>;
  patterns: AclEntry[];
}

/** mosquitto.conf(5) acl_file: `user NAME`, `topic [read|write|readwrite|deny] TOPIC`, `pattern …`. */
function parseAcl(text: string): MosquittoAcl {
  const acl: MosquittoAcl = { anonymous: [], users: new Map(), patterns: [] };
  let current: AclEntry[] = acl.anonymous;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(user|topic|pattern)\s+(.+)$/.exec(line);
    if (!m) throw new Error(`not an acl_file line: ${line}`);
    const [, kind, rest = ''] = m;
    if (kind === 'user') {
      current = [];
      acl.users.set(rest, current);
      continue;
    }
    const am = /^(read|write|readwrite|deny)\s+(.+)$/.exec(rest);
    // Without an access word the line grants readwrite.
    const entry: AclEntry = am
      ? { access: am[1] as Access, topic: am[2]! }
      : { access: 'readwrite', topic: rest };
    (kind === 'pattern' ? acl.patterns : current).push(entry);
  }
  return acl;
}

/** Mosquitto 2's default ACL check: a matching `deny` refuses; else any entry with the access allows. */
function mosquittoAllows(
  acl: MosquittoAcl,
  username: string,
  topic: string,
  access: 'read' | 'write',
): boolean {
  const entries = [
    ...(acl.users.get(username) ?? []),
    ...acl.patterns.map((p) => ({ ...p, topic: p.topic.replaceAll('%u', username) })),
  ];
  if (entries.some((e) => e.access === 'deny' && topicMatches(e.topic, topic))) return false;
  return entries.some(
    (e) => (e.access === access || e.access === 'readwrite') && topicMatches(e.topic, topic),
  );
}

const acl = parseAcl(read('docker/mosquitto/acl'));
const ctxOf = (): AclContext => ({
  prefix: agentConfig().mqtt.prefix,
  discoveryPrefix: agentConfig().discovery.prefix,
});
const topicsOf = (entries: AclEntry[], access: 'read' | 'write') =>
  entries
    .filter((e) => e.access === access || e.access === 'readwrite')
    .map((e) => e.topic)
    .sort();

/** An ACL user's role: a controller reads `#`; an agent reads `P/<its host>/cmd/#`. */
function roleOf(entries: AclEntry[], ctx: AclContext): Role {
  const read = topicsOf(entries, 'read');
  if (read.includes('#')) return { role: 'controller' };
  const head = `${ctx.prefix}/`;
  const cmd = read.find((t) => t.startsWith(head) && t.endsWith('/cmd/#'));
  if (!cmd) throw new Error(`neither a controller nor an agent: ${read.join(', ')}`);
  return { role: 'agent', host: cmd.slice(head.length, -'/cmd/#'.length) };
}

/**
 * What an agent writes under `P/H/` (docs/mqtt-api.md § Topics, "from agent"): Mosquitto's ACL lists
 * these instead of the contract's `P/H/#` minus carve-outs, which acl_file cannot express.
 */
const ownTopics = (P: string, H: string): string[] =>
  ['status', 'heartbeat', 'result', 'result/+', 'output/+', 'param/+/+', 'reply/#'].map(
    (t) => `${P}/${H}/${t}`,
  );

describe("docker/mosquitto/acl grants exactly the contract's roles (src/broker/acl.ts)", () => {
  const users = (): [string, AclEntry[]][] => [...acl.users.entries()];

  it('gives anonymous clients nothing, has no pattern lines, and mosquitto.conf refuses anonymous logins', () => {
    expect(acl.anonymous).toEqual([]);
    expect(acl.patterns).toEqual([]);
    expect(conf1('allow_anonymous')).toBe('false');
  });

  it('has the agent user of docker/agent.yaml, bound to its host, and at least one controller', () => {
    const c = agentConfig();
    const entries = acl.users.get(c.mqtt.username!);
    expect(entries, `no "user ${c.mqtt.username}" block`).toBeDefined();
    expect(roleOf(entries!, ctxOf())).toEqual({ role: 'agent', host: c.host });
    expect(users().filter(([, e]) => roleOf(e, ctxOf()).role === 'controller').length).toBeGreaterThan(0);
  });

  it('controllers: read and write exactly grantsFor(controller)', () => {
    for (const [name, entries] of users()) {
      const role = roleOf(entries, ctxOf());
      if (role.role !== 'controller') continue;
      const g = grantsFor(role, ctxOf());
      expect(topicsOf(entries, 'read'), name).toEqual([...g.read].sort());
      expect(topicsOf(entries, 'write'), name).toEqual([...g.write].sort());
      expect(
        entries.filter((e) => e.access === 'deny'),
        name,
      ).toEqual([]);
    }
  });

  it("agents: read exactly grantsFor(agent); write it with P/H/# spelled out as the contract's own topics", () => {
    const ctx = ctxOf();
    for (const [name, entries] of users()) {
      const role = roleOf(entries, ctx);
      if (role.role !== 'agent') continue;
      const g = grantsFor(role, ctx);
      const wide = `${ctx.prefix}/${role.host}/#`;
      expect(g.write).toContain(wide);
      expect(topicsOf(entries, 'read'), name).toEqual([...g.read].sort());
      expect(topicsOf(entries, 'write'), name).toEqual(
        [...g.write.filter((t) => t !== wide), ...ownTopics(ctx.prefix, role.host)].sort(),
      );
      // `deny` would also refuse reading, and an agent reads its cmd topics.
      expect(
        entries.filter((e) => e.access === 'deny'),
        name,
      ).toEqual([]);
      for (const t of ownTopics(ctx.prefix, role.host)) {
        expect(mayPublish(role, t.replaceAll('+', 'x'), ctx), t).toBe(true);
        expect(
          g.denyWrite.some((d) => topicMatches(d, t.replaceAll('+', 'x'))),
          t,
        ).toBe(false);
      }
    }
  });

  // Every topic of the contract's table, for the agent's own host and another, plus the edges.
  const samples = (P: string, HA: string, H: string): string[] => {
    const perHost = (h: string) => [
      `${P}/${h}/cmd`,
      `${P}/${h}/cmd/restart_dns`,
      `${P}/${h}/result`,
      `${P}/${h}/result/r1`,
      `${P}/${h}/status`,
      `${P}/${h}/heartbeat`,
      `${P}/${h}/output/r1`,
      `${P}/${h}/param/clear_logs/days`,
      `${P}/${h}/param/clear_logs/days/set`,
      `${HA}/button/${h}/run_restart_dns/config`,
      `${HA}/sensor/${h}/last_result/config`,
    ];
    return [
      ...perHost(H),
      ...perHost('pihole-2'),
      `${P}/_fleet/stagger/dns`,
      `${P}/_fleet/stagger/dns/claim/${H}`,
      `${P}/_fleet/stagger/dns/last/${H}`,
      `${P}/_fleet/stagger/dns/last/pihole-2`,
      `${HA}/status`,
      `${P}/_reply/cli-1`,
      `${P}/${H}/reply/cli-1`,
      `${P}/pihole-2/reply/cli-1`,
      '$SYS/broker/uptime',
      'zigbee2mqtt/bridge/state',
    ];
  };

  it('on every topic of the contract, Mosquitto decides as the embedded broker does (read and write, every user)', () => {
    const ctx = ctxOf();
    for (const [name, entries] of users()) {
      const role = roleOf(entries, ctx);
      const g = grantsFor(role, ctx);
      for (const t of samples(
        ctx.prefix,
        ctx.discoveryPrefix,
        role.role === 'agent' ? role.host : 'pihole-1',
      )) {
        expect(mosquittoAllows(acl, name, t, 'write'), `${name} write ${t}`).toBe(mayPublish(role, t, ctx));
        expect(mosquittoAllows(acl, name, t, 'read'), `${name} read ${t}`).toBe(
          g.read.some((f) => topicMatches(f, t)),
        );
      }
    }
  });

  it('the one documented difference: an agent cannot write topics under P/H/ that the contract does not define', () => {
    const ctx = ctxOf();
    const c = agentConfig();
    const role: Role = { role: 'agent', host: c.host };
    const t = `${ctx.prefix}/${c.host}/something_else`;
    expect(mayPublish(role, t, ctx)).toBe(true);
    expect(mosquittoAllows(acl, c.mqtt.username!, t, 'write')).toBe(false);
    expect(read('docker/mosquitto/acl')).toMatch(
      /cannot say "write homelab\/H\/# except homelab\/H\/cmd\/#"/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// packaging/: the systemd unit and its no-sudo hardening drop-in

type Unit = Map<string, Map<string, string[]>>;

/** systemd.syntax(7): [Section], Key=Value (keys may repeat), `#`/`;` comments, `\` continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  let pending = '';
  for (const raw of text.split('\n')) {
    if (pending === '' && /^\s*[#;]/.test(raw)) continue;
    const line = `${pending}${raw.trim()}`;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    pending = '';
    if (line === '') continue;
    const s = /^\[([^\]]+)\]$/.exec(line);
    if (s) {
      section = unit.get(s[1]!) ?? new Map<string, string[]>();
      unit.set(s[1]!, section);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`not a unit file line: ${line}`);
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!]);
  }
  return unit;
}

/** systemd.time(7) time spans: `30s`, `1min 30s`, `90` (seconds) → milliseconds. */
function timespanMs(text: string): number {
  const units: Record<string, number> = {
    us: 0.001,
    ms: 1,
    s: 1000,
    sec: 1000,
    m: 60_000,
    min: 60_000,
    h: 3_600_000,
    hr: 3_600_000,
  };
  if (/^\d+$/.test(text.trim())) return Number(text) * 1000;
  let total = 0;
  for (const [, n, u] of text.matchAll(/(\d+(?:\.\d+)?)\s*([a-z]+)/g)) {
    const f = units[u!];
    if (f === undefined) throw new Error(`unknown time unit ${u}`);
    total += Number(n) * f;
  }
  return total;
}

const service_ = parseUnit(read('packaging/homelab-cmd.service'));
const dropIn = parseUnit(read('packaging/no-sudo-hardening.conf'));
const get = (u: Unit, section: string, key: string): string | undefined => u.get(section)?.get(key)?.at(-1);
const svc = (key: string) => get(service_, 'Service', key);

/**
 * systemd.exec(5), NoNewPrivileges=: these settings turn it on by themselves for a service with
 * User= (no CAP_SYS_ADMIN) — and then sudo cannot become root.
 */
const IMPLY_NO_NEW_PRIVILEGES = [
  'DynamicUser',
  'LockPersonality',
  'MemoryDenyWriteExecute',
  'PrivateDevices',
  'ProtectClock',
  'ProtectHostname',
  'ProtectKernelLogs',
  'ProtectKernelModules',
  'ProtectKernelTunables',
  'RestrictAddressFamilies',
  'RestrictNamespaces',
  'RestrictRealtime',
  'RestrictSUIDSGID',
  'SystemCallArchitectures',
  'SystemCallFilter',
  'SystemCallLog',
];
/** These bind the root commands that sudo runs too: a read-only /usr, no capabilities, no real root. */
const BIND_ROOT_COMMANDS = [
  'ProtectSystem',
  'ProtectHome',
  'CapabilityBoundingSet',
  'AmbientCapabilities',
  'PrivateUsers',
  'ReadOnlyPaths',
  'InaccessiblePaths',
];

/** The rows of the hardening table in docs/install.md: `Key=value` in the first column. */
function documentedDropIn(): Map<string, string> {
  const doc = read('docs/install.md');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Hardening'));
  if (!section) throw new Error('docs/install.md has no "## Hardening" section');
  return new Map([...section.matchAll(/^\| `([A-Za-z]+)=([^`]*)` \|/gm)].map((m) => [m[1]!, m[2]!]));
}

describe('packaging/homelab-cmd.service', () => {
  it('parses as [Unit], [Service] and [Install] sections of Key=Value lines', () => {
    expect([...service_.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(get(service_, 'Install', 'WantedBy')).toBe('multi-user.target');
    expect(service_.get('Unit')?.get('After')).toContain('network-online.target');
  });

  it('runs `homelab-cmd agent --config /etc/homelab-cmd/agent.yaml` as the dedicated user homelab-cmd', () => {
    expect(svc('User')).toBe('homelab-cmd');
    expect(svc('Group')).toBe('homelab-cmd');
    const [env, bin, ...args] = words(svc('ExecStart')!);
    expect(env).toBe('/usr/bin/env');
    expect(Object.keys(pkg.bin)).toContain(bin);
    expect(args).toEqual(['agent', '--config', AGENT_TARGET]);
  });

  it('restarts on failure and keeps state_dir in /var/lib/homelab-cmd', () => {
    expect(svc('Restart')).toBe('on-failure');
    expect(svc('StateDirectory')).toBe('homelab-cmd');
    expect(svc('StateDirectoryMode')).toBe('0700');
    // %S is /var/lib for system services: the default state_dir becomes /var/lib/homelab-cmd.
    expect(service_.get('Service')?.get('Environment')).toContain('XDG_STATE_HOME=%S');
  });

  it('runs Node with the flags docs/performance.md § Node flags measured, and the Docker image with the same', () => {
    const env = unitEnvironment(service_.get('Service')?.get('Environment') ?? []);
    expect(env['NODE_OPTIONS']?.split(' ')).toEqual(['--max-semi-space-size=1', '--jitless']);
    expect(read('docker/Dockerfile')).toContain(`ENV NODE_OPTIONS="${env['NODE_OPTIONS']}"`);
    // systemd's own splitting: a quoted assignment is one word, backslash escapes inside double quotes.
    expect(assignments('A=1 "B=2 3" C=4')).toEqual(['A=1', 'B=2 3', 'C=4']);
    expect(assignments(`"Q=a \\"b\\"" 'S=x y'`)).toEqual(['Q=a "b"', 'S=x y']);
  });

  it('stops with SIGTERM to the agent alone, and waits longer than execution.shutdown_grace (more than 10 s)', () => {
    expect(svc('KillSignal')).toBe('SIGTERM');
    expect(svc('KillMode')).toBe('mixed');
    const stop = timespanMs(svc('TimeoutStopSec')!);
    expect(stop).toBeGreaterThan(10_000);
    expect(stop).toBeGreaterThan(parseConfig('', '/nonexistent/agent.yaml', {}).execution.shutdown_grace);
  });

  it('the sudo profile: NoNewPrivileges=no, and none of the settings that imply it or bind root commands', () => {
    expect(svc('NoNewPrivileges')).toBe('no');
    for (const key of [...IMPLY_NO_NEW_PRIVILEGES, ...BIND_ROOT_COMMANDS])
      expect(svc(key), key).toBeUndefined();
  });
});

describe('packaging/no-sudo-hardening.conf: the no-sudo profile', () => {
  const keys = () => [...(dropIn.get('Service')?.keys() ?? [])];

  it('is a [Service] drop-in that adds NoNewPrivileges=yes and ProtectSystem=strict', () => {
    expect([...dropIn.keys()]).toEqual(['Service']);
    expect(get(dropIn, 'Service', 'NoNewPrivileges')).toBe('yes');
    expect(get(dropIn, 'Service', 'ProtectSystem')).toBe('strict');
    expect(get(dropIn, 'Service', 'CapabilityBoundingSet')).toBe('');
  });

  it('touches only hardening: nothing the unit sets besides NoNewPrivileges, which it turns on', () => {
    for (const k of keys()) {
      if (k === 'NoNewPrivileges') continue;
      expect(svc(k), `${k} is set in the unit already`).toBeUndefined();
    }
    expect(keys()).toEqual(
      expect.arrayContaining(
        IMPLY_NO_NEW_PRIVILEGES.filter(
          (k) => !['DynamicUser', 'MemoryDenyWriteExecute', 'SystemCallLog'].includes(k),
        ),
      ),
    );
  });

  it("leaves out what would break the agent: V8's JIT (MemoryDenyWriteExecute), the heartbeat's /proc files (ProcSubset=pid), the network", () => {
    expect(get(dropIn, 'Service', 'MemoryDenyWriteExecute')).toBeUndefined();
    expect(get(dropIn, 'Service', 'ProcSubset')).toBeUndefined();
    expect(get(dropIn, 'Service', 'PrivateNetwork')).toBeUndefined();
  });

  it('the two profiles differ exactly as docs/install.md § Hardening documents, line by line', () => {
    const documented = documentedDropIn();
    const actual = new Map(keys().map((k) => [k, get(dropIn, 'Service', k)!]));
    expect(new Map([...documented].sort())).toEqual(new Map([...actual].sort()));
  });

  it('docs/install.md explains why NoNewPrivileges breaks sudo', () => {
    const doc = read('docs/install.md');
    expect(doc).toMatch(/NoNewPrivileges/);
    expect(doc).toMatch(/setuid/);
  });
});

// ---------------------------------------------------------------------------------------------
// docs/install.md, docs/operations.md, docs/getting-started.md

const OUR_DOCS = ['docs/install.md', 'docs/operations.md', 'docs/getting-started.md'];

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to "-". */
const anchorsOf = (md: string): Set<string> =>
  new Set(
    [...md.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      m[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );

/** Code spans: ``…`` (which may hold single backticks) and `…`. */
const codeSpans = (text: string): string[] =>
  [...text.matchAll(/``(.+?)``|`([^`]+)`/g)].map((m) => (m[1] ?? m[2])!);

/** The source text the messages come from, with template-literal escapes undone. */
function sourceText(dir: string): string {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.ts') ? [path.join(d, e.name)] : [],
    );
  return walk(dir)
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n')
    .replace(/\\`/g, '`')
    .replace(/\\"/g, '"');
}

/**
 * Texts in operations.md that come from outside homelab-cmd — Node.js TLS and sockets, MQTT.js,
 * Mosquitto, sudo — as they were seen when the agent ran against Mosquitto 2.0.11, a throwaway CA
 * and sudo 1.9.13 (Bad User Name or Password, unable to get local issuer certificate and
 * certificate has expired are the same libraries' wording for the neighbouring cases).
 */
const EXTERNAL = [
  'ECONNREFUSED:',
  'Connection refused: Not authorized',
  '"err":"Connection refused: Not authorized"',
  'Bad User Name or Password',
  '"err":"connect ECONNREFUSED',
  '"err":"self-signed certificate in certificate chain"',
  'SELF_SIGNED_CERT_IN_CHAIN',
  '"unable to get local issuer certificate"',
  '"err":"Hostname/IP does not match certificate\'s altnames:',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  '"err":"certificate has expired"',
  'CERT_HAS_EXPIRED',
  '"err":"read ECONNRESET"',
  '"msg":"mqtt error"',
  'sudo: The "no new privileges" flag is set, which prevents sudo from running as root.',
  'sudo: sorry, you must have a tty to run sudo',
  'NoNewPrivileges=yes',
  'no-new-privileges',
  'Defaults:homelab-cmd !requiretty',
];

describe('docs: install.md, operations.md, getting-started.md', () => {
  it.each(OUR_DOCS)(
    '%s: every relative link points at a file that exists, and at a heading that exists',
    (doc) => {
      const text = read(doc);
      const links = [...text.matchAll(/\]\((?!https?:)([^)\s]+)\)/g)].map((m) => m[1]!);
      expect(links.length).toBeGreaterThan(0);
      for (const link of links) {
        const [file = '', anchor] = link.split('#');
        const target =
          file === '' ? path.join(REPO, doc) : path.resolve(path.dirname(path.join(REPO, doc)), file);
        expect(existsSync(target), link).toBe(true);
        if (anchor) expect(anchorsOf(readFileSync(target, 'utf8')), link).toContain(anchor);
      }
    },
  );

  it('operations.md has a troubleshooting row for every error code of mqtt-api.md', () => {
    const api = read('docs/mqtt-api.md');
    const table = api.slice(
      api.indexOf('## Error codes'),
      api.indexOf('\n## ', api.indexOf('## Error codes') + 1),
    );
    const codes = [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]!);
    // The contract lists 17 error codes; docs/mqtt-api.md § Error codes may document more.
    expect(codes).toEqual(
      expect.arrayContaining([
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
      ]),
    );
    const ops = read('docs/operations.md');
    for (const code of codes) expect(ops, code).toMatch(new RegExp(`^\\| \`${code}\` \\(`, 'm'));
  });

  it('every message operations.md quotes in its troubleshooting tables is in the sources (or from Node.js, Mosquitto, sudo)', () => {
    const src = `${sourceText(path.join(REPO, 'src'))}\n${read('docker/healthcheck.js')}`;
    const ops = read('docs/operations.md');
    const troubleshooting = ops.slice(ops.indexOf('## Troubleshooting'));
    const results = troubleshooting.indexOf('### Results');
    const agent = troubleshooting.indexOf('### The agent');
    expect(results).toBeGreaterThan(0);
    expect(agent).toBeGreaterThan(results);
    const rows = (text: string) =>
      text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'));
    // The "you see" column: the second in the table of error codes, the first in the others.
    const seen = [
      ...rows(troubleshooting.slice(results, agent)).map(
        (r) => r.split(' | ')[/^\| `[a-z_]+` \(/.test(r) ? 1 : 0]!,
      ),
      ...rows(troubleshooting.slice(agent)).map((r) => r.split(' | ')[0]!),
    ];
    let checked = 0;
    for (const span of seen.flatMap(codeSpans)) {
      for (const fragment of span
        .split('…')
        .map((f) => f.trim())
        .filter((f) => f.length >= 12)) {
        if (EXTERNAL.some((e) => e.includes(fragment) || fragment.includes(e))) continue;
        expect(src, `"${fragment}" (in: ${span})`).toContain(fragment);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('operations.md quotes the corrupt-file warnings exactly as the state files log them', () => {
    const src = sourceText(path.join(REPO, 'src'));
    const ops = read('docs/operations.md');
    const block = /```text\n([\s\S]*?)```/
      .exec(ops.slice(ops.indexOf('**Corrupt files.**')))![1]!
      .trim()
      .split('\n');
    // Whitespace-insensitive: the formatter may break a constructor call over several lines.
    const what = [...src.matchAll(/new JsonStateFile\([^;]*?,\s*log,\s*(['"])(.+?)\1,?\s*\)/g)].map(
      (m) => m[2]!,
    );
    expect(what.length).toBeGreaterThanOrEqual(3);
    expect(src).toContain('`${this.what} was corrupt; moved it aside and started without it`');
    for (const w of what) expect(block).toContain(`${w} was corrupt; moved it aside and started without it`);
    expect(src).toContain(block.at(-1));
  });
});
