// `npm run schema`: writes docs/schema/*.json from the zod schemas (src/core/json-schemas.ts), and
// removes a file no schema makes any more. Runs the built dist/ (npm run schema builds first).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { jsonSchemaFiles } from '../dist/core/json-schemas.js';

const dir = new URL('../docs/schema/', import.meta.url);
mkdirSync(dir, { recursive: true });
const files = jsonSchemaFiles();
for (const [name, text] of Object.entries(files)) writeFileSync(new URL(name, dir), text);
for (const name of readdirSync(dir)) if (!(name in files)) rmSync(new URL(name, dir));
console.log(`docs/schema/: ${Object.keys(files).join(', ')}`);
