/** CLI entry: dispatch to a verb; map errors to exit codes and one line a person can act on. */
import { ConfigError, HomelabError } from '../errors.js';
import { VERSION } from '../version.js';
import { err, out, type Verb } from './args.js';

/**
 * Verbs load on demand: `homelab-cmd agent` must not carry the broker, the CLI
 * clients or the HA builders in its memory (an idle agent on a Pi is the budget).
 */
const VERBS: { name: string; summary: string; load: () => Promise<Verb> }[] = [
  {
    name: 'up',
    summary: "the embedded default: an MQTT 5 broker plus this host's agent, on one machine",
    load: async () => (await import('./run.js')).upVerb,
  },
  {
    name: 'agent',
    summary: 'the agent alone, connecting to mqtt.url',
    load: async () => (await import('./agent.js')).agentVerb,
  },
  {
    name: 'broker',
    summary: 'the embedded MQTT broker alone (auth and ACL from config)',
    load: async () => (await import('./run.js')).brokerVerb,
  },
  {
    name: 'send',
    summary:
      'send one request and print its final result as JSON (--group/--hosts: to many hosts, one summary)',
    load: async () => (await import('./send.js')).sendVerb,
  },
  {
    name: 'cancel',
    summary: 'stop a running or scheduled request (its process group is killed); exit 0 when cancelled',
    load: async () => (await import('./cancel.js')).cancelVerb,
  },
  {
    name: 'status',
    summary:
      'a table of hosts from retained status and heartbeats (--actions: per-action counts and durations)',
    load: async () => (await import('./status.js')).statusVerb,
  },
  {
    name: 'check-config',
    summary: 'validate a config file; print every problem with its key path',
    load: async () => (await import('./check-config.js')).checkConfigVerb,
  },
  {
    name: 'explain',
    summary: 'dry run: which action a command or request matches, its exact argv, or why it is refused',
    load: async () => (await import('./explain.js')).explainVerb,
  },
  {
    name: 'sudoers',
    summary: 'print NOPASSWD sudoers lines for exactly the sudo: true actions',
    load: async () => (await import('./sudoers.js')).sudoersVerb,
  },
  {
    name: 'acl',
    summary: 'print a Mosquitto acl_file (and password commands) for broker.users',
    load: async () => (await import('./acl.js')).aclVerb,
  },
  {
    name: 'discovery',
    summary: 'print the Home Assistant discovery messages of a config, or clear them',
    load: async () => (await import('./discovery.js')).discoveryVerb,
  },
];

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

function usage(): string {
  const width = Math.max(...VERBS.map((v) => v.name.length));
  return [
    `homelab-cmd ${VERSION} — run whitelisted maintenance commands on homelab hosts over MQTT`,
    '',
    'Usage: homelab-cmd <command> [options]   (homelab-cmd <command> --help for more)',
    '',
    ...VERBS.map((v) => `  ${v.name.padEnd(width)}  ${v.summary}`),
    '',
    'Docs: README.md and docs/ in the package.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  // `status --watch | head`: the reader is gone, so is our purpose — a quiet exit, not a stack trace.
  if (process.stdout.listenerCount('error') === 0)
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(EXIT.ok);
      throw e;
    });
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    out(VERSION);
    return EXIT.ok;
  }
  const entry = VERBS.find((v) => v.name === name);
  if (!entry) {
    err(`homelab-cmd: unknown command "${name}"\n\n${usage()}`);
    return EXIT.usage;
  }
  const verb = await entry.load();
  try {
    return await verb.run(rest);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(e.message);
      return EXIT.failed;
    }
    if (e instanceof HomelabError) {
      // Usage, connection, port and state-dir errors: the user must change something before retrying.
      err(`homelab-cmd ${verb.name}: ${e.message}`);
      return EXIT.usage;
    }
    err(`homelab-cmd ${verb.name}: unexpected error: ${(e as Error).stack ?? String(e)}`);
    return EXIT.failed;
  }
}
