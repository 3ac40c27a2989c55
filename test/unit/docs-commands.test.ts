/**
 * Every shell command in the docs is run by a test, run by .ci/run, or checked
 * statically with a stated reason (test/helpers/doc-coverage.ts). A command
 * added to the docs without one fails here, with the way to cover it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { docBlocks, docFiles, shellCommands, splitComment, where } from '../helpers/doc-commands.js';
import { HOW_TO_COVER, RULES, inventory, ruleFor } from '../helpers/doc-coverage.js';
import { REPO } from '../helpers/fixtures.js';

const all = inventory();

describe("reading the docs' commands", () => {
  it('finds the commands (the extraction itself works)', () => {
    expect(docFiles()).toEqual(
      expect.arrayContaining(['README.md', 'docs/install.md', 'homeassistant/README.md']),
    );
    const install = shellCommands('docs/install.md').map((c) => c.cmd);
    // A `\` continuation is one command; a trailing comment is not part of it.
    expect(install).toContain(
      'sudo useradd --system --user-group --home-dir /var/lib/homelab-cmd --no-create-home --shell /usr/sbin/nologin homelab-cmd',
    );
    expect(install).toContain('command -v node');
    expect(all.length).toBeGreaterThan(60);
  });

  it.each([
    [
      "mosquitto_sub -v -t 'homelab/#' &   # watch everything",
      "mosquitto_sub -v -t 'homelab/#' &",
      '# watch everything',
    ],
    ['echo "a # b" # c', 'echo "a # b"', '# c'],
    ['rm -r x   # if you installed the drop-in', 'rm -r x', '# if you installed the drop-in'],
    ['echo a#b', 'echo a#b', ''],
  ])('splits %s', (line, cmd, comment) => {
    expect(splitComment(line)).toEqual({ cmd, comment });
  });
});

describe('every shell command in the docs is covered', () => {
  it('no fence is unlabelled: ```sh for commands, ```text for output', () => {
    const bare = docFiles().flatMap((f) =>
      docBlocks(f)
        .filter((b) => b.lang === '')
        .map((b) => `${f}:${b.line}`),
    );
    expect(
      bare,
      `label these fences (\`\`\`sh for commands to run, \`\`\`text for output): ${bare.join(', ')}`,
    ).toEqual([]);
  });

  it('each command has a rule (a runner test, .ci/run, or a static check with a reason)', () => {
    const uncovered = all.filter((x) => !x.rule).map((x) => `  ${where(x.command)}: ${x.command.cmd}`);
    expect(
      uncovered,
      `${uncovered.length} docs command(s) are run by no test:\n${uncovered.join('\n')}\n\n${HOW_TO_COVER}`,
    ).toEqual([]);
  });

  it('a command nobody covers is caught: a new page, or a new verb on a page with runners', () => {
    const at = { line: 1, comment: '', block: 0 };
    expect(
      ruleFor({ ...at, file: 'docs/new-feature.md', cmd: 'homelab-cmd frobnicate --config x.yaml' }),
    ).toBeUndefined();
    expect(
      ruleFor({ ...at, file: 'README.md', cmd: 'curl -X POST http://127.0.0.1:1880/inject/x' }),
    ).toBeUndefined();
    expect(
      ruleFor({ ...at, file: 'docs/new-feature.md', cmd: 'sudo systemctl restart homelab-cmd' })?.cover.kind,
    ).toBe('static');
  });

  it('every rule covers at least one command (no stale rules)', () => {
    const stale = RULES.filter((r) => !all.some((x) => x.rule === r)).map(
      (r) => `${r.files?.join(',') ?? '*'} ${String(r.match)}`,
    );
    expect(stale, 'remove these rules from test/helpers/doc-coverage.ts, or fix their pattern').toEqual([]);
  });

  const runners = [...new Set(RULES.flatMap((r) => (r.cover.kind === 'run' ? [r.cover.by] : [])))];
  it.each(runners)('%s exists and takes its commands from commandsRunBy()', (file) => {
    expect(existsSync(path.join(REPO, file)), `${file} is named in doc-coverage.ts but does not exist`).toBe(
      true,
    );
    expect(readFileSync(path.join(REPO, file), 'utf8')).toMatch(/commandsRunBy\(/);
  });

  const ci = all.filter((x) => x.rule?.cover.kind === 'ci');
  it.each(ci.map((x) => [where(x.command), x.command.cmd, x.rule!] as const))(
    '%s `%s` is run by .ci/run',
    (_w, _cmd, rule) => {
      if (rule.cover.kind !== 'ci') throw new Error('unreachable');
      expect(readFileSync(path.join(REPO, '.ci/run'), 'utf8')).toMatch(rule.cover.line);
    },
  );

  const statics = all.filter((x) => x.rule?.cover.kind === 'static');
  it.each(statics.map((x) => [where(x.command), x.command.cmd, x] as const))(
    '%s `%s` is checked statically',
    (_w, _cmd, x) => {
      const cover = x.rule!.cover;
      if (cover.kind !== 'static') throw new Error('unreachable');
      expect(cover.why.length).toBeGreaterThan(5);
      expect(cover.check.length).toBeGreaterThan(5);
      cover.verify(x.command);
    },
  );
});
