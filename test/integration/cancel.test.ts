/**
 * Cancel requests end to end on the embedded broker (docs/mqtt-api.md § Cancel): a running command is
 * killed with its process group (checked in /proc), a queued one never starts, a deployment rolls back,
 * and every hostile variant — unknown, final, another host's, a cancel of a cancel, retained, unsigned
 * where a signature is needed, replayed — is answered without touching what runs.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sign } from '../../src/core/signing.js';
import { runCli } from '../helpers/agent.js';
import { calls, fakeBin, isDead, tempDir } from '../helpers/fixtures.js';
import { Harness } from '../helpers/harness.js';
import { until } from '../helpers/wait.js';

const h = new Harness();
const KEY = 'c0ffee0123456789abcdef0123456789';
let dir: string;
let keyFile: string;
let n = 0;
const tag = () => `t${++n}`;

/** The pids `longjob TAG` wrote: itself and the grandchild it started (`sleep`). */
function pidsOf(t: string): number[] {
  return readFileSync(path.join(dir, `pids.${t}`), 'utf8')
    .trim()
    .split(' ')
    .map(Number);
}
const started = (t: string) =>
  until(() => existsSync(path.join(dir, `pids.${t}`)), 10_000, `longjob ${t} to start`);

const long = { argv: ['longjob', '{tag}'], params: { tag: { type: 'string', pattern: '^t[0-9]{1,4}$' } } };

beforeAll(async () => {
  await h.start();
  dir = tempDir();
  keyFile = path.join(dir, 'fleet.key');
  writeFileSync(keyFile, `${KEY}\n`);
  // A command that runs until killed, with a grandchild that must die with it.
  fakeBin(
    dir,
    'longjob',
    `sleep 300 &\n# Written whole, then renamed: the test waits for the file and reads both pids at once.\necho "$$ $!" > "${dir}/.pids.$1" && mv "${dir}/.pids.$1" "${dir}/pids.$1"\necho "working on $1"\nwait`,
  );
  // A rollback that waits while the hold file exists: the test holds it to act during the rollback.
  fakeBin(dir, 'restore', `echo restored; while [ -f "${dir}/hold" ]; do sleep 0.05; done`);
  fakeBin(dir, 'sudo', 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
  const binDir = `${dir}/bin`;
  await h.agent(
    'cx',
    { long, deploy: { ...long, rollback: [['restore']], timeout: '5m' }, quick: { argv: ['echo', 'hi'] } },
    { binDir, execution: { concurrency: 1 } },
  );
  await h.agent('cx-other', { long }, { binDir });
  // A stagger group with a health check: its runs hold the group until the check passes.
  await h.agent(
    'cx-stag',
    {
      st: {
        ...long,
        stagger: { group: 'cxg', interval: '1h', settle: '200ms', health: { argv: ['true'], retries: 1 } },
      },
    },
    { binDir },
  );
  await h.agent(
    'cx-signed',
    { priv: { ...long, sudo: true }, plain: long },
    { binDir, extra: { security: { require_signature: 'privileged', key_file: keyFile } } },
  );
});
afterAll(() => h.stop());

describe('a running command', () => {
  it('is killed with its whole process group; it ends cancelled and the cancel succeeded', async () => {
    const t = tag();
    const target = h.finalFor('cx', `run-${t}`, 30_000);
    await h.ctl.pub('homelab/cx/cmd/long', JSON.stringify({ id: `run-${t}`, params: { tag: t } }));
    await started(t);
    const pids = pidsOf(t);
    expect(pids.every((p) => !isDead(p))).toBe(true);

    const answer = await h.request('cx', { id: `cancel-${t}`, cancel: `run-${t}` });
    expect(answer).toMatchObject({ status: 'succeeded', action: null, exit_code: 0 });
    expect(answer.note).toMatch(new RegExp(`cancelled request run-${t} \\(long\\)`));
    const r = await target;
    expect(r).toMatchObject({ status: 'cancelled', error_code: 'cancelled', exit_code: -1, action: 'long' });
    expect(r.error).toMatch(new RegExp(`cancelled by request cancel-${t}: the command was killed`));
    expect(r.stdout).toContain(`working on ${t}`);
    // The command and the grandchild it started: gone (or zombies of a PID 1 that does not reap).
    await until(() => pids.every(isDead), 10_000, 'every process of the group to be gone');

    // The cancel is journaled: the same id again gets the stored answer, nothing more happens.
    const again = await h.request('cx', { id: `cancel-${t}`, cancel: `run-${t}` });
    expect(again).toEqual(answer);
    // The cancelled id is final: a new cancel of it finds nothing to do.
    const late = await h.request('cx', { cancel: `run-${t}` });
    expect(late).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    expect(late.error).toMatch(/already ended cancelled/);
    // And a cancel that has ended is final too: there is nothing left to cancel of it.
    const ofCancel = await h.request('cx', { cancel: `cancel-${t}` });
    expect(ofCancel).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    expect(ofCancel.error).toMatch(/already ended succeeded/);
  });

  it('@oldest cancels the one that started first; with nothing running it is not_found', async () => {
    const [a, b] = [tag(), tag()];
    const first = h.finalFor('cx', `run-${a}`, 30_000);
    const second = h.finalFor('cx', `run-${b}`, 30_000);
    await h.ctl.pub('homelab/cx/cmd/long', JSON.stringify({ id: `run-${a}`, params: { tag: a } }));
    await started(a);
    // concurrency 1: this one waits for a slot.
    await h.ctl.pub('homelab/cx/cmd/long', JSON.stringify({ id: `run-${b}`, params: { tag: b } }));
    // A queued request is withdrawn: it never starts.
    const queued = await h.request('cx', { cancel: `run-${b}` });
    expect(queued.status).toBe('succeeded');
    expect(await second).toMatchObject({ status: 'cancelled', error_code: 'cancelled', exit_code: -1 });
    expect((await h.seen('cx', `run-${b}`)).at(-1)?.error).toMatch(/before it started; nothing ran/);
    expect(existsSync(path.join(dir, `pids.${b}`))).toBe(false);

    expect((await h.request('cx', { cancel: '@oldest' })).status).toBe('succeeded');
    expect((await first).status).toBe('cancelled');
    const none = await h.request('cx', { cancel: '@oldest' });
    expect(none).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    expect(none.error).toMatch(/nothing is running on cx/);
  });
});

describe('a deployment', () => {
  it('rolls back after a cancel; the rollback is never cut short, and a cancel cannot be cancelled', async () => {
    const t = tag();
    writeFileSync(path.join(dir, 'hold'), '');
    const target = h.finalFor('cx', `dep-${t}`, 30_000);
    await h.ctl.pub('homelab/cx/cmd/deploy', JSON.stringify({ id: `dep-${t}`, params: { tag: t } }));
    await started(t);
    const answer = h.finalFor('cx', `cx-${t}`, 30_000);
    await h.ctl.pub('homelab/cx/cmd', JSON.stringify({ id: `cx-${t}`, cancel: `dep-${t}` }));
    // The rollback runs (held by the hold file) while the cancel waits for its target to end.
    await until(() => calls(dir).includes('restore '), 10_000, 'the rollback to start');
    const meta = await h.request('cx', { cancel: `cx-${t}` });
    expect(meta).toMatchObject({ status: 'rejected', error_code: 'invalid_request' });
    expect(meta.error).toMatch(/a cancel cannot be cancelled/);
    // A second cancel of the target during its rollback waits for the same end; it cannot kill the rollback.
    const second = h.finalFor('cx', `cx2-${t}`, 30_000);
    await h.ctl.pub('homelab/cx/cmd', JSON.stringify({ id: `cx2-${t}`, cancel: `dep-${t}` }));
    rmSync(path.join(dir, 'hold'));
    const r = await target;
    expect(r).toMatchObject({ status: 'cancelled', error_code: 'cancelled', exit_code: -1 });
    expect(r.rollback).toMatchObject({ status: 'succeeded' });
    expect(r.error).toMatch(/the rollback ran and succeeded, so the previous state is back/);
    expect(r.stdout).toContain('restored');
    expect((await answer).status).toBe('succeeded');
    expect((await second).status).toBe('succeeded');
    await until(() => pidsOf(t).every(isDead), 10_000, 'the deployment step to be gone');
  });
});

describe('a staggered action', () => {
  it('a scheduled run is withdrawn from its group; a cancelled run holds the group like a failed one', async () => {
    await h.ctl.sub('homelab/_fleet/stagger/cxg/last/cx-stag');
    const [a, b] = [tag(), tag()];
    const first = h.finalFor('cx-stag', `run-${a}`, 30_000);
    await h.ctl.pub('homelab/cx-stag/cmd/st', JSON.stringify({ id: `run-${a}`, params: { tag: a } }));
    await started(a);
    // The group ran a moment ago: the next run waits for the interval (an hour).
    const scheduled = h.ctl.wait(
      (m) => m.topic === `homelab/cx-stag/result/run-${b}` && m.text.includes('"scheduled"'),
      10_000,
      'the second run scheduled',
    );
    const second = h.finalFor('cx-stag', `run-${b}`, 30_000);
    await h.ctl.pub('homelab/cx-stag/cmd/st', JSON.stringify({ id: `run-${b}`, params: { tag: b } }));
    await scheduled;
    expect((await h.request('cx-stag', { cancel: `run-${b}` })).status).toBe('succeeded');
    expect(await second).toMatchObject({ status: 'cancelled', error_code: 'cancelled' });
    expect(existsSync(path.join(dir, `pids.${b}`))).toBe(false);

    expect((await h.request('cx-stag', { cancel: `run-${a}` })).status).toBe('succeeded');
    expect((await first).status).toBe('cancelled');
    // Its record stays unreleased: no other member runs until a run on this host passes its check.
    const record = h.ctl.messages.filter((m) => m.topic === 'homelab/_fleet/stagger/cxg/last/cx-stag').at(-1);
    expect(JSON.parse(record!.text)).toMatchObject({ id: `run-${a}`, released: false });
  });
});

describe('what is refused', () => {
  it('an unknown id, another host’s id, a retained cancel, one on cmd/ACTION, or with an action', async () => {
    const unknown = await h.request('cx', { cancel: 'no-such-id' });
    expect(unknown).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    expect(unknown.error).toMatch(/no request no-such-id on cx/);

    const t = tag();
    const other = h.finalFor('cx-other', `run-${t}`, 30_000);
    await h.ctl.pub('homelab/cx-other/cmd/long', JSON.stringify({ id: `run-${t}`, params: { tag: t } }));
    await started(t);
    // Named on the wrong host: that host does not know it, and the run goes on.
    const wrong = await h.request('cx', { cancel: `run-${t}` });
    expect(wrong).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    const retained = await h.request('cx-other', { cancel: `run-${t}` }, { retain: true });
    expect(retained).toMatchObject({ status: 'rejected', error_code: 'retained_ignored' });
    await h.ctl.pub('homelab/cx-other/cmd', '', { retain: true });
    const onAction = await h.request(
      'cx-other',
      { cancel: `run-${t}` },
      { topic: 'homelab/cx-other/cmd/long' },
    );
    expect(onAction).toMatchObject({ status: 'rejected', error_code: 'invalid_request' });
    expect(onAction.error).toMatch(/P\/H\/cmd/);
    const mixed = await h.request('cx-other', { cancel: `run-${t}`, action: 'long' });
    expect(mixed).toMatchObject({ status: 'rejected', error_code: 'invalid_request' });
    const self = await h.request('cx-other', { id: 'me', cancel: 'me' });
    expect(self.error).toMatch(/cannot cancel itself/);
    expect(pidsOf(t).every((p) => !isDead(p))).toBe(true);

    expect((await h.request('cx-other', { cancel: `run-${t}` })).status).toBe('succeeded');
    expect((await other).status).toBe('cancelled');
  });
});

describe('signatures (security.require_signature: privileged)', () => {
  it('a sudo run needs a signed cancel; a signed one works once, its replay is refused', async () => {
    const t = tag();
    const target = h.finalFor('cx-signed', `run-${t}`, 30_000);
    const ts = Date.now();
    const req = { id: `run-${t}`, params: { tag: t }, ts, ttl: 60 };
    const sig = sign(KEY, { host: 'cx-signed', action: 'priv', id: req.id, ts, params: req.params, ttl: 60 });
    await h.ctl.pub('homelab/cx-signed/cmd/priv', JSON.stringify({ ...req, sig }));
    await started(t);

    const unsigned = await h.request('cx-signed', { cancel: `run-${t}` });
    expect(unsigned).toMatchObject({ status: 'rejected', error_code: 'bad_signature' });
    expect(unsigned.error).toMatch(/action "priv" needs a signed request/);
    // Signed for another action than the one it stops: the signature does not match.
    const cts = Date.now();
    const fields = { host: 'cx-signed', id: `c-${t}`, ts: cts, ttl: 60, cancel: `run-${t}` };
    const wrongSig = sign(KEY, { ...fields, action: 'plain' });
    const wrong = await h.request('cx-signed', {
      id: `c-${t}`,
      cancel: `run-${t}`,
      ts: cts,
      ttl: 60,
      sig: wrongSig,
    });
    expect(wrong).toMatchObject({ status: 'rejected', error_code: 'bad_signature' });
    expect(pidsOf(t).every((p) => !isDead(p))).toBe(true);

    const good = { id: `c2-${t}`, cancel: `run-${t}`, ts: cts, ttl: 60 };
    const goodSig = sign(KEY, { ...fields, id: good.id, action: 'priv' });
    const answer = await h.request('cx-signed', { ...good, sig: goodSig });
    expect(answer.status).toBe('succeeded');
    expect((await target).status).toBe('cancelled');
    // The same signed cancel again: a replay, answered aside, never over the stored answer.
    const replay = h.ctl.next(
      (m) => m.topic === 'homelab/cx-signed/result' && m.text.includes(`"c2-${t}"`),
      10_000,
      'the replay answered on the latest-result topic',
    );
    await h.ctl.pub('homelab/cx-signed/cmd', JSON.stringify({ ...good, sig: goodSig }));
    expect(JSON.parse((await replay).text)).toMatchObject({ status: 'rejected', error_code: 'replayed' });
  });

  it('homelab-cmd cancel --key-file signs over the action it stops (read from the retained result)', async () => {
    const t = tag();
    const target = h.finalFor('cx-signed', `run-${t}`, 30_000);
    const ts = Date.now();
    const req = { id: `run-${t}`, params: { tag: t }, ts, ttl: 60 };
    const sig = sign(KEY, { host: 'cx-signed', action: 'priv', id: req.id, ts, params: req.params, ttl: 60 });
    await h.ctl.pub('homelab/cx-signed/cmd/priv', JSON.stringify({ ...req, sig }));
    await started(t);
    const unsigned = await runCli(['cancel', 'cx-signed', `run-${t}`, '--url', h.url]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(/nothing cancelled — action "priv" needs a signed request/);
    const r = await runCli(['cancel', 'cx-signed', `run-${t}`, '--key-file', keyFile, '--url', h.url]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: `run-${t}`, status: 'cancelled' });
    expect((await target).status).toBe('cancelled');
    await until(() => pidsOf(t).every(isDead), 10_000, 'the signed-away run to be gone');
  });
});
