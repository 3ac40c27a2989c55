import { describe, expect, it } from 'vitest';
import { LiveOutput, type OutputMessage } from '../../src/agent/live-output.js';

describe('LiveOutput', () => {
  it('output without a newline never grows past the cap: one truncated message, then nothing', () => {
    const sent: OutputMessage[] = [];
    const live = new LiveOutput('r1', 10_000, (m) => sent.push(m));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < 200; i++) live.push('stdout', chunk); // 13 MB, no newline
    live.flush(true);
    live.stop();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ id: 'r1', stream: 'stdout', seq: 0, truncated: true });
    expect(sent[0]!.lines.join('\n').length).toBe(10_000);
    expect((live as unknown as { pending: { stdout: string } }).pending.stdout).toBe('');
  });

  it('sends complete lines per stream and keeps a partial line until its newline or the end', () => {
    const sent: OutputMessage[] = [];
    const live = new LiveOutput('r2', 10_000, (m) => sent.push(m));
    live.push('stdout', Buffer.from('one\ntw'));
    live.push('stderr', Buffer.from('err\n'));
    live.flush(false);
    expect(sent.map((m) => [m.stream, m.lines])).toEqual([
      ['stdout', ['one']],
      ['stderr', ['err']],
    ]);
    live.push('stdout', Buffer.from('o'));
    live.flush(true);
    live.stop();
    expect(sent.at(-1)).toMatchObject({ stream: 'stdout', lines: ['two'], seq: 2 });
  });
});
