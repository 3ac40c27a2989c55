/**
 * Cancel requests, the pure part (docs/mqtt-api.md § Cancel): what parses as a cancel and what is
 * refused, and how a stopped run's result and the cancel's own answer read.
 */
import { describe, expect, it } from 'vitest';
import { asCancelled, cancelAnswer, cancelledBeforeStart, CANCEL_OLDEST } from '../../src/core/cancel.js';
import { parseDelivery } from '../../src/core/request.js';
import { makeResult, type Result } from '../../src/core/result.js';

const parse = (body: unknown, topicAction?: string, retained = false) =>
  parseDelivery({ topicAction, payload: Buffer.from(JSON.stringify(body)), retained }, 0, () => 'gen-1');

describe('parsing a cancel request', () => {
  it.each([
    ['an id', { id: 'c1', cancel: 'r-1' }, 'r-1'],
    ['@oldest', { cancel: CANCEL_OLDEST, ts: 0, ttl: 60 }, CANCEL_OLDEST],
    ['with a transaction and a signature', { id: 'c1', cancel: 'r-1', transaction: 'x', sig: 'ab' }, 'r-1'],
  ])('%s', (_l, body, cancel) => {
    const r = parse(body);
    expect(r.ok && r.request.cancel).toBe(cancel);
    expect(r.ok && r.request.action).toBeUndefined();
  });

  it.each([
    ['on cmd/ACTION', { cancel: 'r-1' }, 'restart', /P\/H\/cmd\), not to cmd\/restart/],
    ['with an action', { cancel: 'r-1', action: 'a' }, undefined, /drop "action"/],
    ['with params', { cancel: 'r-1', params: {} }, undefined, /drop "params"/],
    ['with a command', { cancel: 'r-1', command: 'x' }, undefined, /drop "command"/],
    ['with press', { cancel: 'r-1', press: true }, undefined, /drop "press"/],
    ['with a timeout', { cancel: 'r-1', timeout: 5 }, undefined, /drop "timeout"/],
    ['not an id', { cancel: '-x' }, undefined, /must be a request id/],
    ['a wildcard', { cancel: '#' }, undefined, /must be a request id/],
    ['itself', { id: 'me', cancel: 'me' }, undefined, /cannot cancel itself/],
    ['not a string', { cancel: 7 }, undefined, /"cancel"/],
    ['too long', { cancel: 'a'.repeat(65) }, undefined, /"cancel"/],
  ])('refused %s: invalid_request', (_l, body, topicAction, error) => {
    const r = parse(body, topicAction);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.rejection.code).toBe('invalid_request');
      expect(r.rejection.error).toMatch(error);
    }
  });

  it('a retained cancel is never honoured', () => {
    const r = parse({ cancel: 'r-1' }, undefined, true);
    expect(!r.ok && r.rejection.code).toBe('retained_ignored');
  });
});

const ran = (over: Partial<Result> = {}): Result => ({
  ...makeResult(
    'h',
    { id: 'r-1', action: 'deploy' },
    {
      status: 'interrupted',
      error_code: 'interrupted',
      error: 'the agent stopped while the command ran',
      stdout: 'half done\n',
    },
  ),
  ...over,
});

describe('the result of a cancelled run', () => {
  it('killed: cancelled / cancelled, exit_code -1, its output kept', () => {
    expect(asCancelled(ran(), 'c1')).toMatchObject({
      status: 'cancelled',
      error_code: 'cancelled',
      exit_code: -1,
      stdout: 'half done\n',
      error:
        'cancelled by request c1: the command was killed with its whole process group — check the host before running it again',
    });
  });

  it.each([
    ['succeeded', /the rollback ran and succeeded, so the previous state is back/],
    ['failed', /the rollback failed too \(failed\) — the host may be half-deployed/],
    ['timed_out', /the rollback failed too \(timed_out\)/],
    ['interrupted', /the agent stopped during the rollback/],
  ] as const)('a deployment whose rollback %s says so', (status, error) => {
    const r = asCancelled(ran({ rollback: { status, steps: [] } }), 'c1');
    expect(r.status).toBe('cancelled');
    expect(r.error).toMatch(error);
    expect(r.rollback?.status).toBe(status);
  });

  it('a run that succeeded before the kill took effect stays succeeded', () => {
    const ok = ran({ status: 'succeeded', exit_code: 0, error_code: undefined, error: undefined });
    expect(asCancelled(ok, 'c1')).toBe(ok);
  });

  it('withdrawn before it started: nothing ran', () => {
    const r = cancelledBeforeStart('h', { id: 'r-2', action: 'st' }, 'c1', new Date(0));
    expect(r).toMatchObject({ status: 'cancelled', error_code: 'cancelled', exit_code: -1, stdout: '' });
    expect(r.error).toMatch(/before it started; nothing ran/);
  });
});

describe("the cancel request's own answer", () => {
  it('succeeded when its target ended cancelled, naming it; action null', () => {
    const a = cancelAnswer('h', { id: 'c1', action: null }, asCancelled(ran(), 'c1'), new Date(0));
    expect(a).toMatchObject({ id: 'c1', action: null, status: 'succeeded', exit_code: 0 });
    expect(a.note).toBe('cancelled request r-1 (deploy)');
  });

  it('not_found when the target ended otherwise first', () => {
    const done = ran({ status: 'failed', error_code: 'exit_nonzero' });
    const a = cancelAnswer('h', { id: 'c1', action: null }, done, new Date(0));
    expect(a).toMatchObject({ status: 'rejected', error_code: 'not_found' });
    expect(a.error).toMatch(/ended failed before the cancel took effect/);
  });
});
