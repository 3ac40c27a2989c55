/**
 * Reading a config file: YAML → zod → resolved secrets and host defaults.
 * Every problem is collected with its key path, so check-config can print all of them.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlias, isNode, LineCounter, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { defaultHostId } from '../core/names.js';
import { configSchema, type RawConfig } from './schema.js';

/** A config with every default applied and every `*_file` secret read. */
export interface Config extends RawConfig {
  host: string;
  state_dir: string;
  /** The HMAC key from security.key_file, when one is given. */
  signingKey: string | undefined;
  /** Where it was read from, for messages. */
  source: string;
}

/** The example config shipped inside the package, found wherever the package is installed. */
export function exampleConfigPath(): string {
  return fileURLToPath(new URL('../../config/agent.example.yaml', import.meta.url));
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigError(file, [
      { path: '(file)', message: `cannot read it: ${why} — check the path given to --config` },
    ]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}` : 'unknown position';
        const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return { path: `(yaml ${where})`, message: `${what} — fix the YAML syntax there` };
      }),
    );
  }
  const reused = firstAnchorOrAlias(doc, lineCounter);
  if (reused) throw new ConfigError(source, [reused]);
  const data: unknown = doc.toJS() ?? {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(source, [
      { path: '(root)', message: 'the file must be a YAML mapping of keys (host:, mqtt:, actions: …)' },
    ]);
  }
  // zod leaves `input` out of issues unless asked: without it every wrong value would read "is required".
  const parsed = configSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) throw new ConfigError(source, parsed.error.issues.map(formatIssue));

  const raw = parsed.data;
  const issues: ConfigIssue[] = [];
  const dir = path.dirname(path.resolve(source));
  const readSecret = (keyPath: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined;
    try {
      // A trailing newline is how editors save files; it is never part of a password.
      return readFileSync(path.resolve(dir, file), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      issues.push({
        path: keyPath,
        message: `cannot read ${file}: ${(err as Error).message} — check the path and its permissions`,
      });
      return undefined;
    }
  };
  const checkReadable = (keyPath: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined;
    const abs = path.resolve(dir, file);
    readSecret(keyPath, abs);
    return abs;
  };

  const mqtt = { ...raw.mqtt };
  mqtt.password = readSecret('mqtt.password_file', mqtt.password_file) ?? mqtt.password;
  mqtt.ca_file = checkReadable('mqtt.ca_file', mqtt.ca_file);
  mqtt.cert_file = checkReadable('mqtt.cert_file', mqtt.cert_file);
  mqtt.key_file = checkReadable('mqtt.key_file', mqtt.key_file);
  const users = raw.broker.users.map((u, i) => ({
    ...u,
    password: readSecret(`broker.users.${i}.password_file`, u.password_file) ?? u.password,
  }));
  const names = new Set<string>();
  users.forEach((u, i) => {
    if (names.has(u.username))
      issues.push({
        path: `broker.users.${i}.username`,
        message: `"${u.username}" is listed twice — usernames must be unique`,
      });
    names.add(u.username);
  });
  const signingKey = readSecret(
    'security.key_file',
    raw.security.key_file === undefined ? undefined : path.resolve(dir, raw.security.key_file),
  );
  if (signingKey !== undefined && signingKey.length < 16) {
    issues.push({
      path: 'security.key_file',
      message: 'the key is shorter than 16 characters — use e.g. `openssl rand -hex 32 > key`',
    });
  }
  const cluster = raw.broker.cluster && {
    ...raw.broker.cluster,
    password:
      readSecret('broker.cluster.password_file', raw.broker.cluster.password_file) ??
      raw.broker.cluster.password,
  };
  if (issues.length > 0) throw new ConfigError(source, issues);

  return {
    signingKey,
    ...raw,
    mqtt,
    broker: {
      ...raw.broker,
      users,
      cluster,
      state_dir: raw.broker.state_dir === undefined ? undefined : path.resolve(dir, raw.broker.state_dir),
    },
    host: raw.host ?? defaultHostId(os.hostname()),
    state_dir: raw.state_dir ? path.resolve(dir, raw.state_dir) : defaultStateDir(env),
    source,
  };
}

/**
 * YAML anchors (&a) and aliases (*a) are refused: a config never needs them, and a few lines of nested
 * aliases expand to billions of nodes ("billion laughs"; docs/security.md § What the agent withstands).
 */
function firstAnchorOrAlias(doc: Document, lines: LineCounter): ConfigIssue | undefined {
  let found: ConfigIssue | undefined;
  visit(doc, (_key, node) => {
    if (!isNode(node)) return undefined;
    const alias = isAlias(node);
    if (!alias && node.anchor === undefined) return undefined;
    const pos = lines.linePos(node.range?.[0] ?? 0);
    const name = alias ? `alias *${node.source}` : `anchor &${node.anchor ?? ''}`;
    found = {
      path: `(yaml line ${pos.line}, column ${pos.col})`,
      message: `YAML ${name}: anchors, aliases and merge keys (<<) are not accepted in a config — write the value out where it is used`,
    };
    return visit.BREAK;
  });
  return found;
}

export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME || path.join(env.HOME || os.homedir(), '.local', 'state');
  return path.join(base, 'homelab-cmd');
}

function formatIssue(issue: z.core.$ZodIssue): ConfigIssue {
  const keyPath = issue.path.map(String).join('.') || '(root)';
  switch (issue.code) {
    case 'unrecognized_keys':
      return {
        path: issue.keys.map((k) => (keyPath === '(root)' ? k : `${keyPath}.${k}`)).join(', '),
        message:
          'unknown key — remove it, or fix its spelling (every key is listed in docs/configuration.md)',
      };
    case 'invalid_type':
      return {
        path: keyPath,
        message:
          issue.input === undefined
            ? `is required (${issue.expected}) — add it`
            : `expected ${issue.expected}, got ${/password$/.test(keyPath) ? 'a value of another type (not shown: a secret)' : describe(issue.input)} — change the value`,
      };
    case 'invalid_value':
      return {
        path: keyPath,
        message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')} — got ${describe(issue.input)}`,
      };
    case 'invalid_key':
      // A bad record key (action, param or env name): its own rule says what is wrong, not "Invalid key in record".
      return { path: keyPath, message: issue.issues[0]?.message ?? issue.message };
    case 'too_small':
    case 'too_big':
      return { path: keyPath, message: `${issue.message} — change the value` };
    default:
      return { path: keyPath, message: issue.message };
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}
