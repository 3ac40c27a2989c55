/**
 * What the install docs need around a Sandbox: a broker with the docs' users,
 * a stand-in for the editor the reader types into, and a stand-in for systemd
 * that starts the installed unit's ExecStart the way systemd would.
 */
import type { Sandbox } from './doc-sandbox.js';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { silentLogger } from '../../src/log.js';
import { unitEnvironment } from './systemd-env.js';

export const AGENT_PW = 'agent-pihole-1-password-for-the-docs-test';
export const CONTROLLER_PW = 'homeassistant-password-for-the-docs-test';

/** The embedded broker with the docs' two logins: the agent of pihole-1 and Home Assistant (a controller). */
export function docsBroker(): Promise<RunningBroker> {
  return startBroker({
    host: '127.0.0.1',
    port: 0,
    users: [
      { username: 'agent-pihole-1', password: AGENT_PW, role: 'agent', host: 'pihole-1' },
      { username: 'homeassistant', password: CONTROLLER_PW, role: 'controller' },
    ],
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    log: silentLogger(),
  });
}

/** An editor (SUDO_EDITOR) that "types" `content` into the file it is given, as the reader would paste it. */
export function editorTyping(sandbox: Sandbox, content: string): NodeJS.ProcessEnv {
  const text = sandbox.writeTmp('typed.yaml', content);
  return { SUDO_EDITOR: sandbox.writeTmp('editor.sh', `#!/bin/sh\ncat ${text} > "$1"\n`, 0o755) };
}

export interface UnitService {
  user: string;
  group: string;
  execStart: string;
  environment: Record<string, string>;
  stateDirectory: string | undefined;
  stateDirectoryMode: string;
  umask: string;
}

/** The [Service] keys of a unit file that decide how its process starts. */
export function parseService(text: string): UnitService {
  const kv: [string, string][] = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) section = head[1]!;
    else if (section === 'Service')
      kv.push([line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
  }
  const one = (k: string) => kv.filter(([key]) => key === k).at(-1)?.[1];
  // Only %S (the state directory root) is used by our unit; any other specifier must be added here knowingly.
  const expand = (v: string) => {
    const bad = /%[^S%]/.exec(v);
    if (bad) throw new Error(`unit specifier ${bad[0]} is not emulated by the test's systemd stand-in`);
    return v.replace(/%S/g, '/var/lib').replace(/%%/g, '%');
  };
  const environment = unitEnvironment(kv.filter(([k]) => k === 'Environment').map(([, v]) => expand(v)));
  const execStart = one('ExecStart');
  const user = one('User');
  if (!execStart || !user) throw new Error('the unit has no ExecStart or User');
  return {
    user,
    group: one('Group') ?? user,
    execStart: expand(execStart),
    environment,
    stateDirectory: one('StateDirectory'),
    stateDirectoryMode: one('StateDirectoryMode') ?? '0755',
    umask: one('UMask') ?? '0022',
  };
}

/** systemd's default PATH for services (systemd 252, merged /usr). */
export const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin';

/**
 * Starts the unit's ExecStart in the sandbox as systemd would: StateDirectory= created and owned
 * by User=, the process as User=/Group= with its supplementary groups, UMask=, a clean
 * environment of Environment= plus what systemd sets for User= (HOME, USER, LOGNAME, SHELL).
 * Not emulated: the sandboxing settings (PrivateTmp=, …) — packaging.test.ts and
 * `systemd-analyze` check those.
 */
export function startService(sandbox: Sandbox, unitText: string): ReturnType<Sandbox['start']> {
  const u = parseService(unitText);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const env = Object.entries({ PATH: SYSTEMD_PATH, ...u.environment }).map(([k, v]) => q(`${k}=${v}`));
  const state = u.stateDirectory
    ? `install -d -m ${u.stateDirectoryMode} -o ${q(u.user)} -g ${q(u.group)} /var/lib/${u.stateDirectory}`
    : ':';
  const script = [
    state,
    'cd /',
    `umask ${u.umask}`,
    `IFS=: read -r _ _ _ _ _ home shell < <(getent passwd ${q(u.user)})`,
    `exec setpriv --reuid=${q(u.user)} --regid=${q(u.group)} --init-groups env -i HOME="$home" SHELL="$shell" USER=${q(u.user)} LOGNAME=${q(u.user)} ${env.join(' ')} ${u.execStart}`,
  ].join('\n');
  return sandbox.start(script);
}
