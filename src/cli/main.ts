/** CLI entry: dispatch to a verb; map errors to exit codes and one line a person can act on. */
import { ConfigError, HomelabError } from '../errors.js';
import { VERSION } from '../version.js';
import { err, out, type Verb } from './args.js';
import { aclVerb } from './acl.js';
import { checkConfigVerb } from './check-config.js';
import { discoveryVerb } from './discovery.js';
import { explainVerb } from './explain.js';
import { agentVerb, brokerVerb, upVerb } from './run.js';
import { sendVerb } from './send.js';
import { statusVerb } from './status.js';
import { sudoersVerb } from './sudoers.js';

const VERBS: Verb[] = [upVerb, agentVerb, brokerVerb, sendVerb, statusVerb, checkConfigVerb, sudoersVerb, discoveryVerb, explainVerb, aclVerb];

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
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    out(VERSION);
    return EXIT.ok;
  }
  const verb = VERBS.find((v) => v.name === name);
  if (!verb) {
    err(`homelab-cmd: unknown command "${name}"\n\n${usage()}`);
    return EXIT.usage;
  }
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
