/**
 * An argv element that looks like a shell line (src/config/shell-line.ts, docs/configuration.md § argv is
 * not a shell line): the clear cases fail the config with the key path and the fix, the ambiguous ones
 * are warnings that check-config and explain show.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { configWarnings } from '../../src/cli/check-config.js';
import { explain } from '../../src/cli/explain.js';
import { parseConfig } from '../../src/config/load.js';
import { shellLineProblems } from '../../src/config/shell-line.js';
import { notFoundFix } from '../../src/exec/steps.js';
import { ConfigError } from '../../src/errors.js';

describe('shellLineProblems', () => {
  it.each<[string[], 'error' | 'warning' | 'none', number, RegExp?]>([
    [['rm -rf /tmp/cache/*'], 'error', 0, /looks like a shell line.*split it into one element per word/],
    [['systemctl restart nginx'], 'error', 0, /argv\[0\] is the program itself/],
    [['apt-get update && apt-get -y upgrade'], 'error', 0, /steps list/],
    [['ps', 'aux', '|', 'grep', 'x'], 'error', 2, /shell operator.*steps list/],
    [['apt-get', 'update', '&&', 'apt-get', 'upgrade'], 'error', 2, /shell operator/],
    [['apt-get', 'update', ';', 'reboot'], 'error', 2, /shell operator/],
    [['echo', 'hi', '>', '/tmp/f'], 'error', 2, /redirection needs a shell/],
    [['echo', 'hi', '2>&1'], 'error', 2, /shell operator/],
    [['logger', 'cleanup done; reboot now'], 'error', 1, /chains commands/],
    [['logger', 'a || b'], 'error', 1, /chains commands/],
    [['echo', 'today is $(date)'], 'error', 1, /command substitution/],
    [['echo', '`date`'], 'error', 1, /command substitution/],
    [['cat', 'a > b'], 'error', 1, /redirection/],
    [['rm', '-rf', '/tmp/cache/*'], 'warning', 2, /glob character.*find -name/],
    [['find', '/var/log', '-name', '*.gz', '-mtime', '+7', '-delete'], 'warning', 3, /glob/],
    [['ls', '/dev/sd?'], 'warning', 1, /glob/],
    [['sudo', 'systemctl restart x'], 'warning', 1, /whole command in one element/],
    // Not shell lines: what a careful config looks like.
    [['find', '/tmp', '-name', 'x', '-exec', 'rm', '{}', ';'], 'none', 0],
    [['grep', '-E', 'foo|bar', '/var/log/syslog'], 'none', 0],
    [['logger', 'backup finished fine'], 'none', 0],
    [['systemctl', 'restart', 'pihole-FTL'], 'none', 0],
    [['/usr/local/bin/backup.sh', '--to', '/mnt/nas'], 'none', 0],
  ])('%j: %s', (argv, severity, index, message) => {
    const problems = shellLineProblems(argv);
    if (severity === 'none') return expect(problems).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ severity, index });
    expect(problems[0]!.message).toMatch(message!);
  });
});

function config(actions: Record<string, unknown>) {
  return parseConfig(
    stringify({ host: 'h', state_dir: '/tmp/x', execution: { enabled: true }, actions }),
    '/test/agent.yaml',
  );
}

describe('the config', () => {
  it('fails on the clear cases, with the key path and the fix', () => {
    let caught: unknown;
    try {
      config({
        clean: { argv: ['rm -rf /tmp/cache/*'] },
        update: {
          steps: [
            ['apt-get', 'update'],
            ['apt-get', 'upgrade', '|', 'tee', 'x'],
          ],
        },
      });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const issues = (caught as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    expect(issues).toContainEqual(
      expect.stringMatching(/^actions\.clean\.argv\.0: "rm -rf \/tmp\/cache\/\*" looks like a shell line/),
    );
    expect(issues).toContainEqual(
      expect.stringMatching(/^actions\.update\.steps\.1\.2: "\|" is a shell operator/),
    );
  });

  it('a param value is not judged, only the fixed text around it', () => {
    expect(() =>
      config({
        r: {
          argv: ['systemctl', 'restart', '{unit}'],
          params: { unit: { type: 'string', pattern: '^[a-z]+$' } },
        },
      }),
    ).not.toThrow();
  });

  it('warns on the ambiguous ones; explain shows the warning before "would run"', () => {
    const c = config({ clean: { argv: ['rm', '-rf', '/tmp/cache/*'] } });
    expect(configWarnings(c)).toEqual([
      expect.stringMatching(/^actions\.clean\.argv\.2: "\/tmp\/cache\/\*" has a glob character/),
    ]);
    const { lines, accepted } = explain(c, '', 'clean');
    expect(accepted).toBe(true);
    expect(lines.some((l) => /^warning: +actions\.clean\.argv\.2: .*glob/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe('would run: yes, but read the 1 warning(s) above first (nothing was run)');
    expect(lines).not.toContain('would run: yes (nothing was run)');
  });
});

describe('at run time', () => {
  it('"not found" for an argv[0] with spaces says it looks like a shell line', () => {
    expect(notFoundFix('rm -rf /tmp/cache/*')).toBe(
      'it looks like a shell line, but no shell runs it: argv[0] is the program alone — split it into one element per word, e.g. [rm, -rf, /tmp/cache/*]',
    );
    expect(notFoundFix('pihole')).toBe("install it or fix the action's argv");
  });
});

describe('a shell the config names itself', () => {
  it.each([[['sh', '-c', 'echo one; sleep 1; echo two']], [['/bin/bash', '-c', 'a && b | c > /tmp/x']]])(
    '%j: its -c script is not flagged',
    (argv) => {
      expect(shellLineProblems(argv)).toEqual([]);
    },
  );
  it('an element that is not its -c script still is', () => {
    expect(shellLineProblems(['sh', 'script.sh', 'a; b']).map((p) => p.severity)).toEqual(['error']);
  });
});
