/**
 * An argv element that looks like a shell line (docs/configuration.md § argv is not a shell line).
 * The agent never uses a shell: `argv: ["rm -rf /tmp/cache/*"]` names a program called
 * "rm -rf /tmp/cache/*", which does not exist, and a `*`, `|` or `$(…)` reaches the program as it is.
 * The clear cases are config errors; the ones that may be meant literally (a `find -name "*.log"`
 * pattern) are warnings that check-config and explain show.
 */
import path from 'node:path';
import { expandElement, placeholders } from '../core/template.js';

export interface ShellLineProblem {
  index: number;
  severity: 'error' | 'warning';
  message: string;
}

const FIX_SPLIT = 'split it into one element per word, e.g. [rm, -rf, /tmp/cache]';
const FIX_STEPS =
  'give each command its own argv, in a steps list (run in order, stopping at the first failure)';
/** Operators a shell would act on; written as their own element or between words. */
const OPERATOR = /^(\|\||\||&&|;|>>?|<|2>&1|&>|&)$/;
/** Program names seen as the first word of a shell line put in one element. */
const COMMON_COMMANDS = new Set(
  'rm cp mv ls cat echo find grep sed awk tar gzip systemctl service apt apt-get dnf yum docker podman kill pkill reboot shutdown mkdir chmod chown ln curl wget bash sh sudo git npm node python3 journalctl pihole'.split(
    ' ',
  ),
);

/** Shells: their `-c` script is a shell line on purpose. */
const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ash', 'ksh']);

/** Problems of one argv (placeholders `{p}` already filled with a harmless word). */
export function shellLineProblems(argv: readonly string[]): ShellLineProblem[] {
  const out: ShellLineProblem[] = [];
  const error = (index: number, message: string) => out.push({ index, severity: 'error', message });
  const warn = (index: number, message: string) => out.push({ index, severity: 'warning', message });
  // A shell the config names itself (`[sh, -c, "…"]`, or after a wrapper such as setpriv) is asked for in
  // so many words: its script is a shell line on purpose.
  const script = (i: number) =>
    i >= 2 && argv[i - 1] === '-c' && SHELLS.has(path.basename(argv[i - 2] ?? ''));
  argv.forEach((element, i) => {
    if (script(i)) return;
    const words = element.trim().split(/\s+/);
    const hasSpace = /\s/.test(element);
    if (i === 0 && hasSpace) {
      error(
        i,
        `"${element}" looks like a shell line, but argv[0] is the program itself and no shell ever runs — ${words.length > 1 && element.includes('&&') ? FIX_STEPS : FIX_SPLIT}`,
      );
      return;
    }
    if (element.includes('$(') || /`[^`]*`/.test(element)) {
      error(
        i,
        `"${element}" has a command substitution ($(…) or backticks), which no shell will ever perform: the program gets it as text — run that command as its own step, or take the value as a param`,
      );
      return;
    }
    if (OPERATOR.test(element)) {
      // find's -exec … ";" is the one place a lone ";" is a real argument.
      const findTerminator =
        element === ';' && argv.slice(0, i).some((e) => /^-(exec|execdir|ok|okdir)$/.test(e));
      if (!findTerminator)
        error(
          i,
          `"${element}" is a shell operator, but no shell runs this argv: the program gets "${element}" as an argument — ${/^[<>]|>/.test(element) ? 'a redirection needs a shell; write to the file from the program itself (its own option for an output file)' : FIX_STEPS}`,
        );
      return;
    }
    if (hasSpace && (/(^|\s)(\|\||\|)(\s|$)/.test(element) || /&&|;\s/.test(element))) {
      error(
        i,
        `"${element}" looks like a shell line (it chains commands), but no shell runs it — ${FIX_STEPS}`,
      );
      return;
    }
    if (hasSpace && /(^|\s)(>>?|<|2>&1)(\s|$)/.test(element)) {
      error(
        i,
        `"${element}" has a redirection, but no shell runs it: the program gets it as text — ${FIX_SPLIT}`,
      );
      return;
    }
    // Ambiguous: may be a literal the program wants (a find -name pattern, a message with spaces).
    if (i > 0 && hasSpace && COMMON_COMMANDS.has(words[0] ?? '')) {
      warn(
        i,
        `"${element}" looks like a whole command in one element; the program gets it as ONE argument — if these are separate words, ${FIX_SPLIT}`,
      );
      return;
    }
    if (i > 0 && /[*?[]/.test(element)) {
      warn(
        i,
        `"${element}" has a glob character (*, ? or [), which no shell expands: the program gets it literally — fine for a pattern the program itself reads (find -name "*.log"); to act on the matching files, use find, or a param of type path`,
      );
    }
  });
  return out;
}

/** The fixed text of each element: a placeholder `{p}` stands for a harmless word, whatever its value. */
export function fixedParts(argv: readonly string[]): string[] {
  return argv.map((e) => expandElement(e, Object.fromEntries(placeholders(e).map((p) => [p, 'x']))));
}
