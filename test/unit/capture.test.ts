import { describe, it, expect } from 'vitest';
import { CappedBuffer, cutToBytes, decodeCapped } from '../../src/exec/capture.js';

const bytes = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
const size = (text: string): number => Buffer.byteLength(text, 'utf8');

function capture(max: number, chunks: Buffer[]) {
  const buf = new CappedBuffer(max);
  for (const c of chunks) buf.push(c);
  return buf.result();
}

describe('cutToBytes', () => {
  it.each<[string, number, string]>([
    ['hello', 10, 'hello'],
    ['hello', 5, 'hello'],
    ['hello', 3, 'hel'],
    ['hello', 0, ''],
    ['aé', 3, 'aé'], // é is 2 bytes
    ['aé', 2, 'a'], // never half a character
    ['a€', 3, 'a'], // € is 3 bytes
    ['a€', 2, 'a'],
    ['a😀', 4, 'a'], // 😀 is 4 bytes
    ['a😀', 5, 'a😀'],
    ['😀😀', 7, '😀'],
    ['\uFFFD\uFFFD', 4, '\uFFFD'],
  ])('cutToBytes(%j, %d) → %j', (text, max, expected) => {
    const out = cutToBytes(text, max);
    expect(out).toBe(expected);
    expect(size(out)).toBeLessThanOrEqual(max);
    expect(out).not.toContain('\uFFFD\uFFFD\uFFFD');
  });
});

describe('decodeCapped', () => {
  it.each<[string, Buffer, number, boolean, string, boolean]>([
    ['fits, not truncated', bytes('hello'), 10, false, 'hello', false],
    ['fits exactly', bytes('hello'), 5, false, 'hello', false],
    ['already truncated upstream', bytes('hello'), 5, true, 'hello', true],
    // Invalid bytes become U+FFFD (3 bytes each): the text must be re-measured and cut.
    ['invalid bytes grow past the cap', bytes([0xff, 0xff, 0xff, 0xff]), 4, false, '\uFFFD', true],
    ['one invalid byte grows past a tight cap', bytes('ab', [0xff]), 3, false, 'ab', true],
    ['invalid bytes that still fit', bytes('a', [0xff]), 4, false, 'a\uFFFD', false],
    // A cut that split a character leaves a replacement char that was never in the output.
    ['a split 4-byte char is dropped', bytes('a', [0xf0, 0x9f, 0x98]), 4, true, 'a', true],
    ['a split 2-byte char is dropped', bytes('ab', [0xc3]), 3, true, 'ab', true],
  ])('%s', (_label, input, max, already, text, truncated) => {
    const out = decodeCapped(input, max, already);
    expect(out).toEqual({ text, truncated });
    expect(size(out.text)).toBeLessThanOrEqual(max);
  });
});

describe('CappedBuffer', () => {
  it.each<[string, number, Buffer[], string, boolean]>([
    ['under the cap', 10, [bytes('abc'), bytes('def')], 'abcdef', false],
    ['exactly the cap', 6, [bytes('abc'), bytes('def')], 'abcdef', false],
    ['one byte over', 5, [bytes('abc'), bytes('def')], 'abcde', true],
    ['a chunk after the cap is reached', 3, [bytes('abc'), bytes('d')], 'abc', true],
    ['zero cap', 0, [bytes('abc')], '', true],
    ['zero cap, nothing written', 0, [], '', false],
    ['nothing written', 10, [], '', false],
    ['empty chunks', 3, [bytes(''), bytes('abc'), bytes('')], 'abc', false],
    // Multi-byte characters split at the cut: never half a character, never a made-up U+FFFD.
    ['é split at the cap', 2, [bytes('aé')], 'a', true],
    ['€ split at the cap', 3, [bytes('ab€')], 'ab', true],
    ['😀 split at the cap, same size as U+FFFD', 4, [bytes('a😀')], 'a', true],
    [
      '😀 split across chunks and the cap',
      6,
      [bytes('ab', [0xf0, 0x9f]), bytes([0x98, 0x80]), bytes('cd')],
      'ab😀',
      true,
    ],
    ['a character split across chunks, all kept', 10, [bytes([0xe2, 0x82]), bytes([0xac])], '€', false],
    // Invalid UTF-8: each bad byte is replaced, and the cap holds in bytes after replacing.
    ['invalid bytes within the cap', 10, [bytes([0xff, 0xfe, 0x41])], '\uFFFD\uFFFDA', false],
    [
      'invalid bytes filling the cap',
      10,
      [bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
      '\uFFFD\uFFFD\uFFFD',
      true,
    ],
    ['invalid bytes, then more output', 4, [bytes([0xff, 0xff]), bytes('xyz')], '\uFFFD', true],
  ])('%s', (_label, max, chunks, text, truncated) => {
    const out = capture(max, chunks);
    expect(out).toEqual({ text, truncated });
    expect(size(out.text)).toBeLessThanOrEqual(max);
  });

  it('keeps at most max bytes however much is pushed', () => {
    const buf = new CappedBuffer(1000);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 100; i++) buf.push(chunk);
    const out = buf.result();
    expect(out.truncated).toBe(true);
    expect(out.text).toBe('a'.repeat(1000));
  });

  it("does not alias the caller's chunk once it is cut", () => {
    const buf = new CappedBuffer(3);
    const chunk = Buffer.from('abcdef');
    buf.push(chunk);
    chunk.fill(0x7a);
    expect(buf.result().text).toBe('abc');
  });

  it('holds its byte cap on arbitrary bytes (deterministic fuzz)', () => {
    // A small LCG: the same sequence every run, no flakiness.
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = [
      0x41, 0x7a, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xfe, 0x80, 0x0a,
    ];
    for (let round = 0; round < 500; round++) {
      const max = rand(40);
      const chunks: Buffer[] = [];
      const count = rand(5);
      for (let c = 0; c < count; c++)
        chunks.push(Buffer.from(Array.from({ length: rand(20) }, () => alphabet[rand(alphabet.length)]!)));
      const all = Buffer.concat(chunks);
      const out = capture(max, chunks);
      const full = all.toString('utf8');
      expect(size(out.text)).toBeLessThanOrEqual(max);
      // What was kept is the start of the whole output, decoded.
      expect(full.startsWith(out.text)).toBe(true);
      if (size(full) <= max) expect(out).toEqual({ text: full, truncated: false });
      else expect(out.truncated).toBe(true);
    }
  });
});
