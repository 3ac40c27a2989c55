/**
 * The fenced code blocks of the docs, and the shell commands in them, as data.
 * One reader for every test that runs or inventories the docs' examples, so
 * "a command" means the same thing everywhere: a logical line (`\` continuations
 * joined) of a ```sh / ```bash / ```shell block, or a `$ ` line of a ```console block.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './fixtures.js';

export const SHELL_LANGS = ['sh', 'bash', 'shell', 'zsh', 'console'];

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string ('' when unlabelled). */
  lang: string;
  /** The block's lines, with the fence's indentation removed. */
  lines: string[];
}

export interface DocCommand {
  file: string;
  /** 1-based line where the command starts. */
  line: number;
  /** The command without its trailing comment. */
  cmd: string;
  /** The trailing `# …` comment, '' when there is none. */
  comment: string;
  /** Index of its block among the file's shell blocks, in order. */
  block: number;
}

/** README.md and every Markdown file of docs/, homeassistant/, examples/, packaging/ and docker/, repo-relative. */
export function docFiles(): string[] {
  const out = ['README.md', 'CONTRIBUTING.md'];
  const walk = (dir: string): void => {
    for (const name of readdirSync(path.join(REPO, dir)).sort()) {
      const rel = path.join(dir, name);
      if (statSync(path.join(REPO, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.md')) out.push(rel);
    }
  };
  for (const dir of ['docs', 'homeassistant', 'examples', 'packaging', 'docker']) walk(dir);
  return out;
}

export function readDoc(file: string): string {
  return readFileSync(path.join(REPO, file), 'utf8');
}

export function docBlocks(file: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  let open: { indent: number; block: DocBlock } | undefined;
  readDoc(file)
    .split('\n')
    .forEach((text, i) => {
      const fence = /^(\s*)```\s*([\w-]*)/.exec(text);
      if (fence && !open) {
        open = { indent: fence[1]!.length, block: { file, line: i + 1, lang: fence[2] ?? '', lines: [] } };
        return;
      }
      if (fence && open && /^\s*```\s*$/.test(text)) {
        blocks.push(open.block);
        open = undefined;
        return;
      }
      if (open)
        open.block.lines.push(text.slice(Math.min(open.indent, text.length - text.trimStart().length)));
    });
  return blocks;
}

/** Splits `cmd  # comment` where the `#` is outside quotes and starts a word, as the shell does. */
export function splitComment(line: string): { cmd: string; comment: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"') i++;
      continue;
    }
    if (c === '\\') i++;
    else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!)))
      return { cmd: line.slice(0, i).trim(), comment: line.slice(i).trim() };
  }
  return { cmd: line.trim(), comment: '' };
}

export function shellCommands(file: string): DocCommand[] {
  const out: DocCommand[] = [];
  docBlocks(file)
    .filter((b) => SHELL_LANGS.includes(b.lang))
    .forEach((b, block) => {
      let pending = '';
      let start = 0;
      b.lines.forEach((raw, i) => {
        let text = raw;
        if (b.lang === 'console') {
          if (!pending && !text.startsWith('$ ')) return; // output, not a command
          if (!pending) text = text.slice(2);
        }
        if (!pending) start = b.line + 1 + i;
        if (text.trimEnd().endsWith('\\')) {
          pending += `${text.trimEnd().slice(0, -1).trim()} `;
          return;
        }
        const full = (pending + text.trim()).trim();
        pending = '';
        if (!full || full.startsWith('#')) return;
        out.push({ file, line: start, ...splitComment(full), block });
      });
    });
  return out;
}

/** The nth ```yaml block of a file that follows line `after` (0: the first). */
export function yamlAfter(file: string, after: number, nth = 0): string {
  const b = docBlocks(file).filter((x) => x.lang === 'yaml' && x.line > after)[nth];
  if (!b) throw new Error(`${file}: no yaml block after line ${after}`);
  return `${b.lines.join('\n')}\n`;
}

export const where = (c: DocCommand): string => `${c.file}:${c.line}`;
