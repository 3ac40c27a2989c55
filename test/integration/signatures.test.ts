/**
 * Signatures v2 against a real agent (docs/security.md § Signed requests): the signature binds the
 * resolved action, timeout, ttl, transaction and where the answer goes; a signed id stays used for its
 * whole window, however many requests come between and across a restart.
 */
import crypto from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as nodeVm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import type { Journal } from '../../src/agent/journal.js';
import { makeResult } from '../../src/core/result.js';
import { sign, type SignedFields } from '../../src/core/signing.js';
import { REPO, calls, fakeBin, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';

const h = new Harness();
const KEY = 'b7e2c0ffee5e1ec7ed0123456789abcdef';
const HOST = 'sig-v2';
let dir: string;
let stateDir: string;
let agent: Agent;

const ACTIONS = {
  // Two actions whose patterns accept the same raw command: one harmless, one as root.
  log_unit: {
    argv: ['journalctl', '-u', '{unit}'],
    params: { unit: { type: 'string', pattern: '^[a-z]{1,20}$' } },
    pattern: '^unit (?<unit>[a-z]{1,20})$',
  },
  restart_unit: {
    argv: ['systemctl', 'restart', '{unit}'],
    params: { unit: { type: 'string', pattern: '^[a-z]{1,20}$' } },
    pattern: '^unit (?<unit>[a-z]{1,20})$',
    sudo: true,
  },
  slow: { argv: ['sleep', '2'], timeout: '10s' },
  ping: { argv: ['pingme'] },
};

async function startSigAgent(): Promise<void> {
  ({ agent } = await h.agent(HOST, ACTIONS, {
    binDir: `${dir}/bin`,
    stateDir,
    extra: { security: { require_signature: 'all', key_file: path.join(dir, 'fleet.key') } },
  }));
}

beforeAll(async () => {
  await h.start();
  dir = tempDir();
  stateDir = `${dir}/state`;
  writeFileSync(path.join(dir, 'fleet.key'), `${KEY}\n`);
  fakeBin(dir, 'sudo', 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
  fakeBin(dir, 'systemctl');
  fakeBin(dir, 'journalctl');
  fakeBin(dir, 'pingme');
  await startSigAgent();
});
afterAll(() => h.stop());

interface Wire {
  id: string;
  action?: string;
  params?: Record<string, unknown>;
  command?: string;
  timeout?: number;
  ttl?: number;
  transaction?: string;
}

/** The request with ts and sig, signed as `action` with the given response topic / correlation data. */
function signed(
  body: Wire,
  as: { action: string; responseTopic?: string; correlationData?: Buffer },
): Wire & { ts: number; sig: string } {
  const ts = Date.now();
  const fields: SignedFields = {
    host: HOST,
    action: as.action,
    id: body.id,
    ts,
    params: body.command === undefined ? (body.params ?? {}) : undefined,
    command: body.command,
    timeout: body.timeout,
    ttl: body.ttl,
    transaction: body.transaction,
    responseTopic: as.responseTopic,
    correlationData: as.correlationData,
  };
  return { ...body, ts, sig: sign(KEY, fields) };
}

async function publish(
  topic: string,
  payload: object,
  props: { responseTopic?: string; correlationData?: Buffer } = {},
) {
  const id = (payload as { id: string }).id;
  const done = h.finalFor(HOST, id, 20_000);
  await h.ctl.pub(`homelab/${HOST}/${topic}`, JSON.stringify(payload), { properties: props });
  return done;
}

const ran = (cmd: string) => calls(dir).filter((c) => c.startsWith(cmd));

describe('what a v2 signature binds', () => {
  it("a signed raw command sent on another action's topic is bad_signature; the sudo action never runs", async () => {
    const req = signed({ id: 'raw-1', command: 'unit nginx' }, { action: 'log_unit' });
    const moved = await publish('cmd/restart_unit', req);
    expect(moved).toMatchObject({ status: 'rejected', error_code: 'bad_signature' });
    expect(ran('systemctl')).toEqual([]);
    // The same bytes where they were signed for run (a refused request does not use up its id).
    expect(await publish('cmd', req)).toMatchObject({ status: 'succeeded', action: 'log_unit' });
    expect(ran('journalctl')).toEqual(['journalctl -u nginx']);
    expect(ran('systemctl')).toEqual([]);
  });

  const tampers: [string, Wire, Partial<Wire>][] = [
    ['timeout', { id: 't-timeout', action: 'slow', timeout: 5 }, { timeout: 0.01 }],
    ['ttl', { id: 't-ttl', action: 'ping', ttl: 60 }, { ttl: 3600 }],
    ['transaction', { id: 't-tx', action: 'ping', transaction: 'mine' }, { transaction: 'theirs' }],
  ];
  it.each(tampers)('a changed %s is bad_signature', async (_name, body, change) => {
    const req = signed(body, { action: body.action! });
    expect(await publish(`cmd/${body.action}`, { ...req, ...change })).toMatchObject({
      status: 'rejected',
      error_code: 'bad_signature',
    });
  });

  it('a changed response topic or correlation data is bad_signature; the signed ones are answered', async () => {
    // Replies only under the host's own P/H/reply/ (docs/security.md § Answers that cannot be faked).
    const base = `homelab/${HOST}/reply/ctl`;
    const reply = { responseTopic: `${base}/a`, correlationData: Buffer.from('c0ffee', 'hex') };
    await h.ctl.sub(`${base}/#`);
    const req = signed({ id: 't-reply', action: 'ping' }, { action: 'ping', ...reply });
    expect(await publish('cmd/ping', req, { ...reply, responseTopic: `${base}/evil` })).toMatchObject({
      error_code: 'bad_signature',
    });
    expect(
      await publish('cmd/ping', req, { ...reply, correlationData: Buffer.from('beef', 'hex') }),
    ).toMatchObject({ error_code: 'bad_signature' });
    expect(await publish('cmd/ping', req, { responseTopic: reply.responseTopic })).toMatchObject({
      error_code: 'bad_signature',
    });
    expect(await publish('cmd/ping', req, reply)).toMatchObject({ status: 'succeeded' });
    const answer = h.ctl.messages.find(
      (m) => m.topic === `${base}/a` && (JSON.parse(m.text) as { status: string }).status === 'succeeded',
    );
    expect(answer?.packet.properties?.correlationData?.toString('hex')).toBe('c0ffee');
    // The tampered topic heard only its refusal.
    const evil = h.ctl.messages.filter((m) => m.topic === `${base}/evil`);
    expect(evil.map((m) => (JSON.parse(m.text) as { error_code: string }).error_code)).toEqual([
      'bad_signature',
    ]);
  });
});

describe('the Node-RED sign function (examples/node-red/sign-function.js)', () => {
  it('signs the response topic and correlation data it passes on; the agent answers there', async () => {
    const code = readFileSync(path.join(REPO, 'examples/node-red/sign-function.js'), 'utf8');
    const msg = {
      host: HOST,
      action: 'ping',
      _msgid: 'nr-1',
      responseTopic: `homelab/${HOST}/reply/nodered`,
      correlationData: Buffer.from('nr-corr'),
    };
    const env = { get: (k: string) => (k === 'HOMELAB_CMD_KEY' ? KEY : undefined) };
    const out = nodeVm.runInNewContext(`(function(){${code}\n})()`, { msg, env, crypto, Buffer }) as {
      topic: string;
      payload: { id: string };
      responseTopic: string;
      correlationData: Buffer;
    };
    await h.ctl.sub(`homelab/${HOST}/reply/nodered`);
    const props = { responseTopic: out.responseTopic, correlationData: out.correlationData };
    expect(await publish('cmd/ping', out.payload, props)).toMatchObject({
      status: 'succeeded',
      transaction: 'nr-1',
    });
    const reply = h.ctl.messages.find((m) => m.topic === `homelab/${HOST}/reply/nodered`);
    expect(reply?.packet.properties?.correlationData?.toString()).toBe('nr-corr');
  });
});

describe('a signed id is valid once within its window', () => {
  /** What the journal holds after `n` more requests ran (each: running, final, acknowledged). */
  function newerRequests(n: number): void {
    const journal = (agent as unknown as { journal: Journal }).journal;
    for (let i = 0; i < n; i++) {
      const ref = { id: `newer-${i}`, action: 'ping' };
      journal.record(makeResult(HOST, ref, { status: 'running' }), undefined, false);
      journal.record(makeResult(HOST, ref, { status: 'succeeded' }), undefined, false);
      journal.markPublished(ref.id);
    }
  }

  it('after 12,000 newer ids, and again after a restart, the captured request is `replayed`', async () => {
    const captured = signed({ id: 'captured-1', action: 'ping' }, { action: 'ping' });
    expect(await publish('cmd/ping', captured)).toMatchObject({ status: 'succeeded' });
    const before = ran('pingme').length;
    newerRequests(12_000);
    expect(await publish('cmd/ping', captured)).toMatchObject({
      status: 'rejected',
      error_code: 'replayed',
    });
    await h.stopAgent(agent);
    await startSigAgent();
    expect(await publish('cmd/ping', captured)).toMatchObject({
      status: 'rejected',
      error_code: 'replayed',
    });
    expect(ran('pingme').length).toBe(before);
  }, 60_000);
});
