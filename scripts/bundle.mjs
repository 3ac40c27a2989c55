/**
 * Builds bundle/, what the published package runs (docs/performance.md § The published package):
 * the CLI and agent as a few ES modules, their dependencies inside, code split at every dynamic
 * import so a config loads only what it uses (`agent` never loads the broker, a broker without a
 * cluster never loads the Redis clients, one without disk state never loads LevelDB).
 *
 * Why bundle: an `npm install -g` of the package with its dependencies was 87 packages and 35 MB,
 * and an agent that loads hundreds of small CommonJS files holds them all in memory. And the
 * embedded broker runs aedes patched by patch-package (patches/): npm does not apply our patches to
 * a registry install's dependencies, so the patched code ships only inside the bundle.
 *
 * The one thing esbuild cannot inline is classic-level's compiled LevelDB binding: its prebuilt
 * `.node` files for Linux are copied next to the bundle (bundle/classic-level/prebuilds/), where
 * node-gyp-build finds them as it would in node_modules/classic-level.
 *
 * Tests run dist/ (tsc, unminified, incremental); test/integration/packed.test.ts runs this bundle
 * from the packed tarball. `npm pack` and `npm publish` build it (prepack).
 * Usage: node scripts/bundle.mjs [--metafile]   (the metafile says what each output file holds)
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { build } from 'esbuild';

const REPO = path.resolve(import.meta.dirname, '..');
export const OUT = path.join(REPO, 'bundle');
/**
 * The LevelDB bindings shipped: the platforms docs/install.md § What you need supports (Linux:
 * x86-64 with glibc or musl, 64-bit ARM, 32-bit ARMv6/v7 as on older Raspberry Pis). Elsewhere the
 * embedded broker's disk state says which binding is missing (src/broker/disk-persistence.ts).
 */
const PREBUILDS = ['linux-x64', 'linux-arm64', 'linux-arm'];

/**
 * Sources read files next to themselves (`new URL('../package.json', import.meta.url)`): in the
 * bundle every module sits in one directory, so each gets the URL it has in dist/, which resolves the
 * same relative paths to the same files of the package (or of the checkout, for the tests' bundle in
 * node_modules/.cache: test/global-build.ts).
 */
function distUrls(out) {
  const toRepo = path.relative(out, REPO).split(path.sep).join('/');
  return {
    name: 'dist-urls',
    setup(b) {
      b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const asDist = `${toRepo}/dist/${path.relative(path.join(REPO, 'src'), args.path).split(path.sep).join('/').replace(/\.ts$/, '.js')}`;
        return {
          contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(asDist)}, import.meta.url)`),
          loader: 'ts',
        };
      });
    },
  };
}

/** docker/healthcheck.js imports ../dist/x.js, built by tsc from src/x.ts: bundled from the source. */
const distToSrc = {
  name: 'dist-to-src',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/dist\// }, (args) => ({
      path: path.join(REPO, 'src', args.path.slice('../dist/'.length).replace(/\.js$/, '.ts')),
    }));
  },
};

/**
 * zod's `z` namespace carries `z.locales`, error messages in 49 languages (260 KB of the bundle,
 * more than the rest of zod): the sources use none, and zod itself uses only English.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: "export { default as en } from './en.js';",
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

/**
 * MQTT.js loads every transport it has at its first connect: WebSocket (ws) for ws:// and wss://,
 * and, inside its TCP transport, a SOCKS client (socks, ip-address) used only with a SOCKS proxy. An
 * agent or a CLI command on mqtt:// or mqtts:// uses neither: each is loaded at its first use here
 * (docs/performance.md § MQTT.js's number cache, and transports loaded on use).
 * Each replacement must find its text, so an MQTT.js that changed fails the build, not a user's connect.
 */
const MQTT_LAZY = [
  {
    file: /[\\/]mqtt[\\/]build[\\/]lib[\\/]connect[\\/]index\.js$/,
    from: `protocols.ws = require('./ws').streamBuilder;
            protocols.wss = require('./ws').streamBuilder;`,
    to: `protocols.ws = (client, opts) => require('./ws').streamBuilder(client, opts);
            protocols.wss = protocols.ws;`,
  },
  {
    file: /[\\/]mqtt[\\/]build[\\/]lib[\\/]connect[\\/]tcp\.js$/,
    from: `const socks_1 = __importDefault(require("./socks"));`,
    to: `const socks_1 = { default: (...args) => __importDefault(require("./socks")).default(...args) };`,
  },
];
const mqttLazyTransports = {
  name: 'mqtt-lazy-transports',
  setup(b) {
    for (const { file, from, to } of MQTT_LAZY)
      b.onLoad({ filter: file }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes(from))
          throw new Error(
            `${args.path} no longer contains the text scripts/bundle.mjs makes lazy (${JSON.stringify(from.slice(0, 40))}…): update MQTT_LAZY for this MQTT.js, or install the version package-lock.json names (npm ci)`,
          );
        return { contents: text.replace(from, to), loader: 'js', resolveDir: path.dirname(args.path) };
      });
  },
};

/** classic-level loads its binding with node-gyp-build(__dirname): here, from bundle/classic-level/. */
const levelBinding = {
  name: 'classic-level-binding',
  setup(b) {
    b.onLoad({ filter: /[\\/]classic-level[\\/]binding\.js$/ }, () => ({
      contents: `module.exports = require('node-gyp-build')(require('node:path').join(__bundleDir, 'classic-level'));`,
      loader: 'js',
      resolveDir: path.join(REPO, 'node_modules', 'classic-level'),
    }));
  },
};

// Bundled CommonJS (aedes' and MQTT.js's dependencies, ioredis, pino) calls require() for Node's
// built-ins: ES module output has no require, so each output file makes one.
const banner = [
  "import { createRequire as __createRequire } from 'node:module';",
  "import { fileURLToPath as __fileURLToPath } from 'node:url';",
  'const require = __createRequire(import.meta.url);',
  "const __bundleDir = __fileURLToPath(new URL('.', import.meta.url));",
].join('\n');

/** A line patches/aedes+*.patch adds: without it the bundle would ship aedes unpatched. */
export const AEDES_PATCH_MARKER = 'in-flight queue full: message dropped';

/**
 * `out` and `minify` differ only for the tests' copy (test/global-build.ts): unminified, so a failure
 * in a child process names real functions.
 */
export async function bundle({ metafile = false, out = OUT, minify = true } = {}) {
  const aedesClient = path.join(REPO, 'node_modules', 'aedes', 'lib', 'client.js');
  if (!readFileSync(aedesClient, 'utf8').includes(AEDES_PATCH_MARKER))
    throw new Error(
      `${aedesClient} is not patched (patches/aedes+*.patch): run \`npx patch-package\` (npm ci runs it), then bundle again`,
    );
  rmSync(out, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: REPO,
    // The image's HEALTHCHECK too (docker/Dockerfile): it needs MQTT.js and the config loader.
    entryPoints: { main: 'src/cli/main.ts', healthcheck: 'docker/healthcheck.js' },
    outdir: out,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify,
    // Error messages and logs name classes (HomelabError, …): keep the names readable.
    keepNames: true,
    legalComments: 'linked',
    // One directory: every output file resolves paths of the package from the same place (see distUrls).
    chunkNames: '[name]-[hash]',
    banner: { js: banner },
    plugins: [distToSrc, distUrls(out), zodEnglishOnly, mqttLazyTransports, levelBinding],
    metafile,
    logLevel: 'warning',
  });
  for (const p of PREBUILDS)
    cpSync(
      path.join(REPO, 'node_modules', 'classic-level', 'prebuilds', p),
      path.join(out, 'classic-level', 'prebuilds', p),
      { recursive: true },
    );
  mkdirSync(out, { recursive: true });
  writeFileSync(
    path.join(out, 'README.md'),
    'Built by `node scripts/bundle.mjs` from src/ (prepack); not in git. See scripts/bundle.mjs.\n',
  );
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await bundle({ metafile: process.argv.includes('--metafile') });
  if (result.metafile) writeFileSync(path.join(OUT, 'meta.json'), JSON.stringify(result.metafile));
}
