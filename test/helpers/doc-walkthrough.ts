/**
 * Runs a how-to page's shell blocks in a Sandbox, as a reader would type them:
 * one block at a time, in one long session (the `cd` of a block holds for the
 * next). Commands the coverage rules mark static become no-ops (their check is
 * done elsewhere); the only other changes are the substitutions a test states.
 */
import { commandsRunBy, isStatic } from './doc-coverage.js';
import { shellCommands, where, type DocCommand } from './doc-commands.js';
import type { RunResult, Sandbox } from './doc-sandbox.js';

export interface Substitution {
  from: string | RegExp;
  to: string | ((match: string, ...groups: string[]) => string);
  /** Why this change keeps the command's meaning (shown when the block fails). */
  why: string;
}

export interface BlockRun extends RunResult {
  script: string;
}

export class Walkthrough {
  private readonly blocks: DocCommand[][] = [];
  private readonly ran = new Set<number>();

  constructor(
    readonly file: string,
    readonly runner: string,
    private readonly sandbox: Sandbox,
    private readonly subs: Substitution[],
  ) {
    const mine = new Set(
      commandsRunBy(runner)
        .filter((c) => c.file === file)
        .map(where),
    );
    for (const c of shellCommands(file)) {
      if (!mine.has(where(c)) && !isStatic(c))
        throw new Error(
          `${where(c)}: \`${c.cmd}\` is neither run by ${runner} nor static (test/helpers/doc-coverage.ts)`,
        );
      (this.blocks[c.block] ??= []).push(c);
    }
  }

  /** The command line as it runs here: the substitutions applied, static ones a no-op. */
  line(c: DocCommand): string {
    if (isStatic(c)) return `: static, not run: ${JSON.stringify(c.cmd)}`;
    // Two branches for replace()'s two overloads (string or function replacement).
    return this.subs.reduce(
      (cmd, s) => (typeof s.to === 'string' ? cmd.replace(s.from, s.to) : cmd.replace(s.from, s.to)),
      c.cmd,
    );
  }

  /** Runs the block whose commands include `needle`, and fails with the script and its output unless it exits 0. */
  async block(
    needle: string,
    opts: { stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ): Promise<BlockRun> {
    const i = this.blocks.findIndex((b) => b?.some((c) => c.cmd.includes(needle)));
    if (i === -1)
      throw new Error(`${this.file}: no shell block has a command containing ${JSON.stringify(needle)}`);
    if (this.ran.has(i))
      throw new Error(`${this.file}: the block with ${JSON.stringify(needle)} ran already`);
    this.ran.add(i);
    const cmds = this.blocks[i]!;
    const script = [
      'set -eo pipefail',
      'trap \'echo "FAILED: $BASH_COMMAND" >&2\' ERR',
      ...cmds.map((c) => this.line(c)),
    ].join('\n');
    const r = await this.sandbox.run(script, { ...opts, keepCwd: true });
    if (r.code !== 0) {
      const used = this.subs
        .map((s) => `  ${String(s.from)} → ${typeof s.to === 'string' ? s.to : '(mapped)'}  (${s.why})`)
        .join('\n');
      throw new Error(
        `${this.file}:${cmds[0]!.line}: the block failed (exit ${r.code})\n--- script\n${script}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n--- substitutions\n${used}`,
      );
    }
    return { ...r, script };
  }

  /** Commands of blocks no test has run yet: a page's walkthrough must run them all. */
  unrun(): string[] {
    return this.blocks.flatMap((b, i) =>
      b && !this.ran.has(i) ? b.filter((c) => !isStatic(c)).map((c) => `${where(c)}: ${c.cmd}`) : [],
    );
  }
}
