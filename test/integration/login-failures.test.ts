/**
 * The agent's login failures say what the broker said, once per cause, and say when they are over
 * (docs/brokers.md § Log lines): a wrong password against a real broker with users is one warning
 * naming "bad username or password" and what to check, however many retries follow; the broker going
 * away is one more (a different cause); the broker coming back with the user is one recovery line.
 * The agent runs in-process with its pino output captured; retries are waited on, never slept through.
 */
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { stringify } from 'yaml';
import { tempDir } from '../helpers/fixtures.js';
import { until } from '../helpers/wait.js';

type Line = {
  level: number;
  msg: string;
  cause?: string;
  check?: string;
  attempts?: number;
  reason?: string;
};

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

function broker(port: number, password: string): Promise<RunningBroker> {
  return startBroker({
    host: '127.0.0.1',
    port,
    users: [{ username: 'agent-lf', password, role: 'agent', host: 'lf' }],
    prefix: 'homelab',
    discoveryPrefix: 'homeassistant',
    log: silentLogger(),
  });
}

describe('agent login failures', () => {
  it('a wrong password: one warning naming it and what to check, over many retries; then one recovery line', async () => {
    const first = await broker(0, 'the-right-password');
    const port = first.port;
    const dir = tempDir();
    const config = parseConfig(
      stringify({
        host: 'lf',
        state_dir: `${dir}/state`,
        mqtt: { url: `mqtt://127.0.0.1:${port}`, username: 'agent-lf', password: 'a-wrong-password' },
        discovery: { enabled: false },
        actions: { uptime: { argv: ['uptime'] } },
      }),
      `${dir}/agent.yaml`,
    );
    const raw: string[] = [];
    // Debug too: the repeated attempts are there (as debug), which is how the test counts retries.
    const log = pino({ level: 'debug' }, { write: (s: string) => raw.push(s) });
    const lines = () => raw.map((s) => JSON.parse(s) as Line);
    const agent = new Agent(config, log, { backoff: { initialMs: 20, maxMs: 100 } });
    agent.start();
    cleanups.push(async () => void (await agent.stop()));

    const badLogin = () => lines().filter((l) => l.cause === 'bad_login');
    await until(() => badLogin().some((l) => (l.attempts ?? 0) >= 6), 30_000, 'six refused logins');
    const warned = badLogin().filter((l) => l.level === 40);
    expect(warned).toHaveLength(1);
    expect(warned[0]!.msg).toBe(
      'the broker refused the login: bad username or password; retrying with backoff',
    );
    expect(warned[0]!.check).toContain('check mqtt.username and mqtt.password (or mqtt.password_file)');
    // Not "broker not reachable", and no second line per attempt from the error event.
    expect(
      lines().filter((l) => l.msg === 'broker not reachable; retrying' || l.msg === 'mqtt error'),
    ).toEqual([]);
    expect(lines().filter((l) => l.level >= 40)).toHaveLength(1);

    // The broker goes away: a new cause, said once more.
    await first.close();
    const unreachable = () => lines().filter((l) => l.cause === 'unreachable');
    await until(() => unreachable().some((l) => (l.attempts ?? 0) >= 3), 30_000, 'refused connections');
    expect(unreachable().filter((l) => l.level === 40)).toHaveLength(1);
    expect(unreachable()[0]!.msg).toBe('broker not reachable; retrying');
    expect(unreachable()[0]!.reason).toMatch(/^ECONNREFUSED/);

    // It comes back knowing the agent's password: one line says the problem is over.
    const second = await broker(port, 'a-wrong-password');
    cleanups.push(() => second.close());
    await agent.waitConnected(30_000);
    const over = lines().filter(
      (l) => l.msg === 'the broker accepts the agent again; the connection problem is over',
    );
    expect(over).toHaveLength(1);
    expect(over[0]).toMatchObject({ level: 30, causes: ['bad_login', 'unreachable'] });
    expect(lines().filter((l) => l.level >= 40)).toHaveLength(2);
  }, 90_000);
});
