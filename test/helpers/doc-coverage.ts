/**
 * Who runs each shell command of the docs. test/unit/docs-commands.test.ts fails
 * on a command that no rule covers; the runner tests take their commands from
 * here (commandsRunBy), so a rule cannot claim a command its runner skips.
 *
 * The first rule that matches a command decides. Three kinds:
 * - run:    a test runs it as written (with only the substitutions it states) and checks its effect;
 * - ci:     .ci/run runs it (the inventory checks that .ci/run really contains it);
 * - static: it cannot run here; `check` says what is checked instead, `verify` checks it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { DocCommand } from './doc-commands.js';
import { docFiles, shellCommands } from './doc-commands.js';
import { REPO } from './fixtures.js';

export type Cover =
  | { kind: 'run'; by: string }
  | { kind: 'ci'; line: RegExp }
  | { kind: 'static'; why: string; check: string; verify: (c: DocCommand) => void };

export interface Rule {
  /** Only these files (repo-relative); every file when absent. */
  files?: string[];
  match: RegExp;
  cover: Cover;
}

const read = (f: string) => readFileSync(path.join(REPO, f), 'utf8');
const pkg = () =>
  JSON.parse(read('package.json')) as {
    name: string;
    bin: Record<string, string>;
    engines: { node: string };
    scripts: Record<string, string>;
  };
function must(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

const INSTALL = 'test/integration/docs-install.test.ts';
const GETTING_STARTED = 'test/integration/docs-getting-started.test.ts';
const SUDO = 'test/integration/docs-sudo.test.ts';
const EXAMPLES = 'test/integration/docs-examples.test.ts';
const NODE_RED = 'test/integration/node-red.test.ts';
/** Docs whose CLI and MQTT examples docs-examples.test.ts runs against its agent for host pihole-1. */
const EXAMPLE_DOCS = [
  'README.md',
  'docs/mqtt-api.md',
  'docs/security.md',
  'docs/operations.md',
  'docs/performance.md',
  'docs/home-assistant.md',
];

const unitExists = (c: DocCommand) => {
  // daemon-reload names no unit; every other verb is about ours.
  must(/ homelab-cmd(\.service)?\b|daemon-reload$/.test(c.cmd), 'names the homelab-cmd unit');
  must(existsSync(path.join(REPO, 'packaging/homelab-cmd.service')), 'packaging/homelab-cmd.service exists');
};

export const RULES: Rule[] = [
  // --- Cannot run here -------------------------------------------------------------------
  {
    match: /^ssh /,
    cover: {
      kind: 'static',
      why: 'a login from your computer to the Pi',
      check:
        'the destination is the host the page names; docs-getting-started checks it with `ssh -G` (parses, never connects)',
      verify: (c) =>
        must(
          /^ssh <user>@pihole-1\.local$/.test(c.cmd),
          'ssh to <user>@pihole-1.local, the hostname set in Imager',
        ),
    },
  },
  {
    match: /^sudo apt-get (update|install)\b/,
    cover: {
      kind: 'static',
      why: "changes the operating system's packages (and needs the network)",
      check: 'docs-getting-started runs the same apt-get arguments with --simulate',
      verify: (c) =>
        must(
          /^sudo apt-get (update && sudo apt-get -y full-upgrade|install -y [a-z0-9 .+-]+)$/.test(c.cmd),
          'plain apt-get update/full-upgrade/install -y',
        ),
    },
  },
  {
    match: /^(curl -fsSL https:\/\/deb\.nodesource\.com\/|sudo bash \/tmp\/nodesource_setup\.sh$)/,
    cover: {
      kind: 'static',
      why: "downloads and runs NodeSource's installer as root",
      check: 'the Node.js major it installs satisfies package.json engines.node',
      verify: (c) => {
        const setup =
          /setup_(\d+)\.x/.exec(c.cmd) ??
          /setup_(\d+)\.x/.exec(readFileSync(path.join(REPO, c.file), 'utf8'));
        const min = Number(/>=\s*(\d+)/.exec(pkg().engines.node)?.[1]);
        must(
          setup !== null && Number(setup[1]) >= min,
          `NodeSource's setup_N.x with N >= ${min} (engines.node)`,
        );
      },
    },
  },
  {
    match: /^sudo npm install -g homelab-cmd$/,
    cover: {
      kind: 'static',
      why: 'homelab-cmd is not published on npm yet (install.md says so)',
      check:
        'package.json is the package `homelab-cmd` with the bin `homelab-cmd`; docs-install installs its npm pack tarball the same way',
      verify: () =>
        must(
          pkg().name === 'homelab-cmd' && pkg().bin['homelab-cmd'] !== undefined,
          'package.json name and bin are homelab-cmd',
        ),
    },
  },
  {
    match: /(^|&& )(sudo )?systemctl /,
    cover: {
      kind: 'static',
      why: 'needs systemd as PID 1, and would start a real service',
      check:
        'the unit exists; docs-install runs `systemd-analyze verify` on the installed unit and starts its ExecStart the way systemd would (User=, Environment=, StateDirectory=)',
      verify: unitExists,
    },
  },
  {
    match: /^journalctl -u homelab-cmd( -f)? -o cat( -n \d+)?$/,
    cover: {
      kind: 'static',
      why: 'needs journald',
      check:
        "docs-install and docs-getting-started find the log lines the docs promise in what the unit's ExecStart writes (what journald would store)",
      verify: unitExists,
    },
  },
  {
    match: /^docker compose (-f docker\/compose\.yaml )?(up|ps|logs)\b/,
    cover: {
      kind: 'static',
      why: 'needs a Docker engine',
      check:
        'the compose file parses and has the service; test/unit/packaging.test.ts checks compose.yaml, the Dockerfile and the ACL; docs-install logs in to a Mosquitto with docker/mosquitto/ and the passwords the page makes',
      verify: (c) => {
        const compose = parse(read('docker/compose.yaml')) as { services: Record<string, unknown> };
        const service = /\b(agent|mosquitto)$/.exec(c.cmd)?.[1];
        must(
          service === undefined || service in compose.services,
          `docker/compose.yaml has the service ${service}`,
        );
      },
    },
  },
  {
    match: /^npm run bench:cluster$/,
    cover: {
      kind: 'static',
      why: 'the 1,000-agent cluster takes about a minute',
      check:
        'bench:cluster runs the same script with --only cluster; bench:quick (run by .ci/run) includes a 40-agent cluster',
      verify: () =>
        must(
          pkg().scripts['bench:cluster'] === `${pkg().scripts.bench} --only cluster` &&
            read('.ci/run').includes('npm run bench:quick'),
          'bench:cluster is bench --only cluster; .ci/run runs bench:quick',
        ),
    },
  },
  {
    match: /^npm run bench$/,
    cover: {
      kind: 'static',
      why: 'the full benchmark takes minutes',
      check: 'bench and bench:quick run the same script; .ci/run runs bench:quick',
      verify: () =>
        must(
          pkg().scripts['bench:quick'] === `${pkg().scripts.bench} --quick` &&
            read('.ci/run').includes('npm run bench:quick'),
          'bench:quick is bench --quick, run by .ci/run',
        ),
    },
  },

  {
    match: /^npm run test:(unit|integration|docs)$/,
    cover: {
      kind: 'static',
      why: 'one lane of `npm test`, which .ci/run runs whole',
      check: 'the script runs its vitest project, and npm test runs every project',
      verify: (c) => {
        const lane = c.cmd.slice('npm run test:'.length);
        must(
          pkg().scripts[`test:${lane}`] === `vitest run --project ${lane}` &&
            read('vitest.config.ts').includes(`name: '${lane}'`) &&
            pkg().scripts.test === 'vitest run',
          `test:${lane} = vitest run --project ${lane} (a project of vitest.config.ts); npm test = vitest run`,
        );
      },
    },
  },
  {
    match: /^npx vitest run( test\/\S+\.test\.ts)+$/,
    cover: {
      kind: 'static',
      why: 'runs part of the suite, which .ci/run runs whole (npm test)',
      check: 'every test file it names exists',
      verify: (c) => {
        for (const f of c.cmd.split(' ').filter((w) => w.endsWith('.test.ts')))
          must(existsSync(path.join(REPO, f)), `${f} exists`);
      },
    },
  },

  // --- Walkthroughs: every other command of these pages runs, in order, in a throwaway root ---
  { files: ['docs/install.md'], match: /./, cover: { kind: 'run', by: INSTALL } },
  { files: ['docs/getting-started.md'], match: /./, cover: { kind: 'run', by: GETTING_STARTED } },
  { files: ['docs/sudo.md', 'docs/configuration.md'], match: /./, cover: { kind: 'run', by: SUDO } },

  // --- Examples against a running agent ---------------------------------------------------
  { files: ['docs/node-red.md'], match: /^curl .*\/inject\//, cover: { kind: 'run', by: NODE_RED } },
  { files: EXAMPLE_DOCS, match: /^npm ci && npm start$/, cover: { kind: 'run', by: EXAMPLES } },
  {
    files: EXAMPLE_DOCS,
    match: /^(mosquitto_(pub|sub|rr)|(npx )?homelab-cmd|examples\/sign-request\.sh) /,
    cover: { kind: 'run', by: EXAMPLES },
  },
  {
    files: EXAMPLE_DOCS,
    match: /^journalctl -u homelab-cmd -o cat \| jq /,
    cover: { kind: 'run', by: EXAMPLES },
  },
  { files: EXAMPLE_DOCS, match: /^node bench\/bench\.mjs --help$/, cover: { kind: 'run', by: EXAMPLES } },

  // --- What CI runs -------------------------------------------------------------------------
  { match: /^npm ci( && npm test)?$/, cover: { kind: 'ci', line: /^npm ci\b/m } },
  { match: /^npm test$/, cover: { kind: 'ci', line: /^npm test$/m } },
  { match: /^npm run lint$/, cover: { kind: 'ci', line: /^npm run lint$/m } },
  { match: /^npm run bench:quick$/, cover: { kind: 'ci', line: /^npm run bench:quick$/m } },
  { match: /^npm run test:fuzz$/, cover: { kind: 'ci', line: /^npm run test:fuzz$/m } },
  { match: /^npm run test:chaos$/, cover: { kind: 'ci', line: /^npm run test:chaos$/m } },
];

export function ruleFor(c: DocCommand): Rule | undefined {
  return RULES.find((r) => (r.files === undefined || r.files.includes(c.file)) && r.match.test(c.cmd));
}

/** Every docs command, with the rule that covers it. */
export function inventory(): { command: DocCommand; rule: Rule | undefined }[] {
  return docFiles().flatMap((f) => shellCommands(f).map((command) => ({ command, rule: ruleFor(command) })));
}

/** The commands a runner test must run (it fails on one it has no way to run). */
export function commandsRunBy(testFile: string): DocCommand[] {
  return inventory()
    .filter(({ rule }) => rule?.cover.kind === 'run' && rule.cover.by === testFile)
    .map(({ command }) => command);
}

/** Is this command of a walkthrough page one that only gets checked statically? */
export function isStatic(c: DocCommand): boolean {
  return ruleFor(c)?.cover.kind === 'static';
}

export const HOW_TO_COVER = `Every shell command in the docs must be run by a test (or by .ci/run), or be checked statically with a reason.
To cover a new one, add a rule to test/helpers/doc-coverage.ts:
  - { files: ['docs/x.md'], match: /^your-command /, cover: { kind: 'run', by: 'test/integration/<file>.test.ts' } }
    and in that test, take it from commandsRunBy('<file>') and run it as written (state any substitution, e.g. the broker port);
  - or { match: …, cover: { kind: 'static', why: 'why it cannot run in a test', check: 'what is checked instead', verify: (c) => … } };
  - or label the fence \`\`\`text if it is output, not a command.`;
