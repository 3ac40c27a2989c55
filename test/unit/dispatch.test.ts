/** The dispatcher's guard: no handler's error reaches the caller (src/agent/dispatch.ts). */
import type { IPublishPacket } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { Dispatcher, type Route } from '../../src/agent/dispatch.js';
import { silentLogger } from '../../src/log.js';

const msg = (topic: string) => ({
  topic,
  payload: Buffer.from('x'),
  packet: { topic, retain: false } as IPublishPacket,
});

describe('Dispatcher', () => {
  it('the first matching route that takes a message is the only one to see it', () => {
    const seen: string[] = [];
    const route = (name: string, take: boolean, prefix: string): Route => ({
      name,
      matches: (t) => t.startsWith(prefix),
      handle: () => {
        seen.push(name);
        return take;
      },
    });
    const d = new Dispatcher(
      [route('declines', false, 'a/'), route('takes', true, 'a/'), route('never', true, 'a/')],
      silentLogger(),
    );
    d.dispatch(msg('a/b'));
    d.dispatch(msg('z/b'));
    expect(seen).toEqual(['declines', 'takes']);
  });

  it('a throwing handler is refused through its route, and a throwing refusal is only logged', () => {
    const refused: string[] = [];
    const d = new Dispatcher(
      [
        {
          name: 'command',
          matches: (t) => t === 'cmd',
          handle: () => {
            throw new RangeError('Maximum call stack size exceeded');
          },
          refuse: (_m, error) => refused.push(error),
        },
        {
          name: 'worse',
          matches: (t) => t === 'worse',
          handle: () => {
            throw new Error('first');
          },
          refuse: () => {
            throw new Error('second');
          },
        },
        {
          name: 'matcher',
          matches: () => {
            throw new TypeError('in the matcher');
          },
          handle: () => true,
        },
      ],
      silentLogger(),
    );
    expect(() => d.dispatch(msg('cmd'))).not.toThrow();
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(
      /could not handle this message \(Maximum call stack size exceeded\); nothing was run/,
    );
    expect(() => d.dispatch(msg('worse'))).not.toThrow();
    expect(() => d.dispatch(msg('anything'))).not.toThrow();
  });
});
