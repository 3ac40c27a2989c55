/** The newcomer's findings about the files and docs (issue 17), kept fixed: each line could drift back. */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/fixtures.js';

const read = (f: string) => readFileSync(path.join(REPO, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as { license: string; files: string[] };
const docs = ['README.md', ...readdirSync(path.join(REPO, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);

describe('newcomer docs', () => {
  it('a LICENSE file says what package.json says (MIT)', () => {
    expect(pkg.license).toBe('MIT');
    const license = read('LICENSE');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} homelab-cmd contributors\n/);
    expect(license).toContain('THE SOFTWARE IS PROVIDED "AS IS"');
  });

  it.each(docs)('%s: no "<this repository>" placeholder left to guess', (doc) => {
    expect(read(doc)).not.toContain('<this repository>');
  });

  it('install.md does not claim the package lacks packaging/', () => {
    expect(pkg.files).toContain('packaging/');
    expect(read('docs/install.md')).not.toMatch(/does not include `packaging\/`/);
  });

  it('docker/mosquitto/acl counts the places of the host id right', () => {
    const acl = read('docker/mosquitto/acl');
    const [, places, topicLines] = /\((\d+) places: the\n# user line and (\d+) topic lines\)/.exec(acl) ?? [];
    const block = acl.slice(acl.indexOf('# --- agent: host homelab-docker'));
    const lines = block
      .slice(0, block.indexOf('\n\n'))
      .split('\n')
      .filter((l) => !l.startsWith('#'));
    const named = lines.filter((l) => l.includes('homelab-docker'));
    expect(Number(places)).toBe(named.length);
    expect(Number(topicLines)).toBe(named.filter((l) => l.startsWith('topic ')).length);
  });

  it('node-red.md says which Node-RED runs on Node 20', () => {
    expect(read('docs/node-red.md')).toMatch(
      /On Node\.js 20\*\*, install Node-RED 4: `npm install node-red@4`/,
    );
  });
});
