/**
 * exec/wrap.ts as a table: the argv each kind of agent spawns for one command,
 * by sudo, run user, root, systemd and PID namespace. systemd is not PID 1 on
 * this machine, so its rows are what proves the scope's argv.
 */
import { describe, expect, it } from 'vitest';
import { wrapCommand, type Isolation, type Tools, type Wrapped } from '../../src/exec/wrap.js';

const T: Tools = {
  sudo: '/usr/bin/sudo',
  timeout: '/usr/bin/timeout',
  env: '/usr/bin/env',
  systemdRun: '/usr/bin/systemd-run',
  unshare: '/usr/bin/unshare',
  setpriv: '/usr/bin/setpriv',
};
const RUN = { name: 'homelab-cmd-run', uid: 998, gid: 997 };
const CMD = ['/usr/bin/df', '-h'];
const INPUT = {
  sudo: false,
  actionTimeoutMs: 30_000,
  processes: 50,
  env: { PATH: '/usr/bin', LANG: 'C.UTF-8' },
};
const SCOPE = [
  T.systemdRun,
  '--scope',
  '--quiet',
  '--collect',
  '-p',
  'TasksMax=50',
  '-p',
  'RuntimeMaxSec=45s',
  '--',
];
const DROP = [T.setpriv, '--reuid=998', '--regid=997', '--clear-groups', '--'];
const TIMEOUT = [T.timeout, '--kill-after=5s', '30s'];
const ENV = [T.env, '-i', 'PATH=/usr/bin', 'LANG=C.UTF-8'];
const OWNER = { workDirOwner: { uid: 998, gid: 997 } };

const iso = (o: Partial<Isolation>): Isolation => ({ root: false, systemd: false, pidns: false, ...o });

describe('wrapCommand', () => {
  it.each<[string, boolean, Isolation, Wrapped]>([
    ['sudo action', true, iso({}), { argv: [T.sudo, '-n', '--', ...TIMEOUT, ...CMD], viaSudo: true }],
    [
      'sudo action, systemd',
      true,
      iso({ systemd: true }),
      { argv: [T.sudo, '-n', '--', ...SCOPE, ...TIMEOUT, ...CMD], viaSudo: true },
    ],
    [
      'sudo action, root agent',
      true,
      iso({ root: true, runAs: RUN }),
      { argv: [T.sudo, '-n', '--', ...TIMEOUT, ...CMD], viaSudo: true },
    ],
    ['no run user', false, iso({}), { argv: CMD }],
    ['no run user, root, systemd', false, iso({ root: true, systemd: true }), { argv: [...SCOPE, ...CMD] }],
    [
      'run user, root agent',
      false,
      iso({ root: true, runAs: RUN }),
      { argv: CMD, uid: 998, gid: 997, ...OWNER },
    ],
    [
      'run user, root, PID namespace',
      false,
      iso({ root: true, runAs: RUN, pidns: true }),
      { argv: [T.unshare, '--pid', '--fork', '--kill-child', '--', ...DROP, ...CMD], ...OWNER },
    ],
    [
      'run user, root, systemd',
      false,
      iso({ root: true, runAs: RUN, systemd: true }),
      { argv: [...SCOPE, ...DROP, ...CMD], ...OWNER },
    ],
    [
      'run user, unprivileged agent',
      false,
      iso({ runAs: RUN }),
      {
        argv: [T.sudo, '-n', '-u', 'homelab-cmd-run', '--', ...ENV, ...TIMEOUT, ...CMD],
        rootCwd: true,
        viaSudo: true,
      },
    ],
    [
      'run user, unprivileged agent, systemd',
      false,
      iso({ runAs: RUN, systemd: true }),
      {
        argv: [T.sudo, '-n', '--', ...SCOPE, ...DROP, ...ENV, ...TIMEOUT, ...CMD],
        rootCwd: true,
        viaSudo: true,
      },
    ],
  ])('%s', (_name, sudo, isolation, expected) => {
    expect(wrapCommand(CMD, { ...INPUT, sudo }, isolation, T)).toEqual(expected);
  });

  it('leaves TasksMax out without limits.processes', () => {
    const w = wrapCommand(CMD, { ...INPUT, processes: undefined }, iso({ root: true, systemd: true }), T);
    expect(w.argv.slice(0, 7)).toEqual([
      T.systemdRun,
      '--scope',
      '--quiet',
      '--collect',
      '-p',
      'RuntimeMaxSec=45s',
      '--',
    ]);
  });
});
