import { describe, expect, it } from 'vitest';
import { grantsFor, mayPublish, topicMatches } from '../../src/broker/acl.js';
import {
  agentPublishFilters,
  agentReadFilters,
  commandFilters,
  hostTopics,
  paramSetOf,
} from '../../src/core/topics.js';

// One module builds, parses and filters every topic (docs/mqtt-api.md § Topics).
describe('core/topics', () => {
  const t = hostTopics('lab', 'h1');

  it.each([
    ['lab/h1/param/act/p/set', { action: 'act', param: 'p' }],
    ['lab/h1/param/act/p', undefined],
    ['lab/h1/param/act/p/x/set', undefined],
    ['lab/h1/param//p/set', undefined],
    ['lab/h1/param/act//set', undefined],
    ['lab/h2/param/act/p/set', undefined],
    ['lab/h1/cmd/act', undefined],
  ])('paramSetOf(%s)', (topic, want) => {
    expect(paramSetOf(t, topic)).toEqual(want);
  });

  it('every topic a builder makes is matched by the filter of its kind', () => {
    expect(topicMatches(t.paramSetFilter, `${t.param('a', 'b')}/set`)).toBe(true);
    expect(topicMatches(t.cmdFilter, t.cmdAction('a'))).toBe(true);
    expect(topicMatches(t.cmdFilter, t.cmd)).toBe(true);
    expect(topicMatches(hostTopics('lab', '+').status, t.status)).toBe(true);
    for (const f of commandFilters('lab')) expect(f.startsWith('lab/+/')).toBe(true);
  });

  it("an agent's explicit publish list is inside what the embedded broker grants it", () => {
    const ctx = { prefix: 'lab', discoveryPrefix: 'ha' };
    const concrete = (f: string) => f.replaceAll('+', 'x').replace(/#$/, 'y');
    for (const f of agentPublishFilters('lab', 'ha', 'h1'))
      expect(mayPublish({ role: 'agent', host: 'h1' }, concrete(f), ctx), f).toBe(true);
    expect(agentReadFilters('lab', 'ha', 'h1')).toEqual(grantsFor({ role: 'agent', host: 'h1' }, ctx).read);
  });

  it('the Mosquitto ACL lets an agent write every topic it publishes (homelab-cmd acl writes this list)', () => {
    const filters = agentPublishFilters('lab', 'ha', 'h1');
    const published = [
      t.status,
      t.heartbeat,
      t.result,
      t.resultFor('r1'),
      t.output('r1'),
      t.param('act', 'p'),
      t.probe('web'),
      t.switchState('nginx'),
      t.running,
      t.updates,
      t.rebootRequired,
      t.reboot,
      `${t.replyBase}abc`,
    ];
    for (const topic of published)
      expect(
        filters.some((f) => topicMatches(f, topic)),
        topic,
      ).toBe(true);
  });
});
