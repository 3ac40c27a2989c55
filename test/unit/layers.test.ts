/**
 * The layering CONTRIBUTING.md § Layout promises, checked on the import statements of src/: core is
 * pure (no I/O module of Node, nothing above it), config and exec never reach up into the running
 * agent, the broker or the CLI. A move that breaks it fails here instead of in a review.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Every module a file imports at run time (`import type` is erased and does not count). */
function imports(dir: string): { file: string; from: string }[] {
  return readdirSync(path.join(SRC, dir))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .flatMap((f) => {
      const text = readFileSync(path.join(SRC, dir, f), 'utf8');
      return [...text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'/gms)].map((m) => ({
        file: `${dir}/${f}`,
        from: m[1]!,
      }));
    });
}

const above = (from: string, layers: string[]) => layers.some((l) => from.startsWith(`../${l}/`));

describe('layers of src/', () => {
  it('finds the imports it checks', () => {
    expect(imports('exec').length).toBeGreaterThan(20);
  });

  it('core/ imports only core, config types and pure Node modules: no I/O', () => {
    const bad = imports('core').filter(
      ({ from }) =>
        above(from, ['agent', 'exec', 'cli', 'broker']) ||
        /^node:(fs|child_process|net|http|https|dgram|worker_threads)/.test(from),
    );
    expect(bad).toEqual([]);
  });

  it('config/ and exec/ never import the agent, the broker or the CLI', () => {
    const bad = [...imports('config'), ...imports('exec')].filter(({ from }) =>
      above(from, ['agent', 'cli', 'broker']),
    );
    expect(bad).toEqual([]);
  });

  it('the execution stack goes one way: retry → rollback → steps → spawn', () => {
    const order = ['retry', 'rollback', 'steps', 'spawn'];
    const bad = imports('exec').filter(({ file, from }) => {
      const me = order.indexOf(path.basename(file, '.ts'));
      const it = order.indexOf(path.basename(from, '.js'));
      return me >= 0 && it >= 0 && it <= me && from.startsWith('./');
    });
    expect(bad).toEqual([]);
  });
});
