/** Which MQTT 5 response topics the agent answers (core/reply.ts, docs/security.md § Answers that cannot be faked). */
import { describe, expect, it } from 'vitest';
import { MAX_CORRELATION_BYTES, MAX_REPLY_TOPIC_BYTES, checkReplyTo } from '../../src/core/reply.js';
import { hostTopics } from '../../src/core/topics.js';

const base = hostTopics('homelab', 'pihole-1').replyBase;

describe('checkReplyTo', () => {
  it('the base is P/H/reply/', () => expect(base).toBe('homelab/pihole-1/reply/'));

  it('no response topic: nothing to answer, and no complaint', () => {
    expect(checkReplyTo(undefined, undefined, base)).toEqual({ ok: true, replyTo: undefined });
  });

  it.each([
    'homelab/pihole-1/reply/me',
    'homelab/pihole-1/reply/cli-123/a.b',
    `homelab/pihole-1/reply/${'x'.repeat(MAX_REPLY_TOPIC_BYTES - base.length)}`,
  ])('answers %s', (topic) => {
    const corr = Buffer.alloc(MAX_CORRELATION_BYTES, 1);
    expect(checkReplyTo(topic, corr, base)).toEqual({
      ok: true,
      replyTo: { responseTopic: topic, correlationData: corr },
    });
  });

  it.each([
    ['another request’s result', 'homelab/pihole-1/result/victim'],
    ['the latest result', 'homelab/pihole-1/result'],
    ['the old shared reply space', 'homelab/_reply/me'],
    ['another host’s reply space', 'homelab/pihole-2/reply/me'],
    ['a host whose id starts the same', 'homelab/pihole-10/reply/me'],
    ['a fleet topic', 'homelab/_fleet/stagger/dns/pihole-1'],
    ['a discovery topic', 'homeassistant/button/pihole-1/x/config'],
    ['the base alone', 'homelab/pihole-1/reply/'],
    ['the base without its slash', 'homelab/pihole-1/reply'],
    ['an empty level', 'homelab/pihole-1/reply//me'],
    ['a trailing empty level', 'homelab/pihole-1/reply/me/'],
    ['a + wildcard', 'homelab/pihole-1/reply/+'],
    ['a # wildcard', 'homelab/pihole-1/reply/#'],
    ['a $', 'homelab/pihole-1/reply/$SYS'],
    ['NUL', 'homelab/pihole-1/reply/a\u0000b'],
    ['too long', `homelab/pihole-1/reply/${'x'.repeat(MAX_REPLY_TOPIC_BYTES)}`],
    ['too long in bytes', `homelab/pihole-1/reply/${'é'.repeat(MAX_REPLY_TOPIC_BYTES / 2)}`],
    ['empty', ''],
    ['not a string', 42],
  ])('refuses %s', (_what, topic) => {
    const r = checkReplyTo(topic, undefined, base);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/response topic/);
  });

  it('refuses correlation data over the bound, or that is not binary', () => {
    const topic = 'homelab/pihole-1/reply/me';
    expect(checkReplyTo(topic, Buffer.alloc(MAX_CORRELATION_BYTES + 1), base)).toMatchObject({ ok: false });
    expect(checkReplyTo(topic, 'text', base)).toMatchObject({ ok: false });
  });
});
