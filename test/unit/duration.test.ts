import { describe, it, expect } from 'vitest';
import { formatDuration, parseDuration, toSecondsArg } from '../../src/core/duration.js';

describe('parseDuration', () => {
  // docs/configuration.md § Durations: "a number of seconds or a string 500ms, 30s, 30m, 2h".
  it.each<[number | string, number]>([
    [0, 0],
    [30, 30_000],
    [1.5, 1_500],
    [0.25, 250],
    ['30', 30_000],
    ['2.5', 2_500],
    ['500ms', 500],
    ['30s', 30_000],
    ['30m', 1_800_000],
    ['2h', 7_200_000],
    ['1.5m', 90_000],
    ['0.5h', 1_800_000],
    ['0s', 0],
    [' 30s ', 30_000],
    ['30 s', 30_000],
    ['1.0005s', 1_001],
  ])('%j → %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each<number | string>([
    -1,
    -0.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    '',
    '   ',
    's',
    'ms',
    '-5s',
    '+5s',
    '5x',
    '5 sec',
    '5S',
    '5d',
    '1e3',
    '1e3s',
    '.5s',
    '5.s',
    '0x10',
    '30s30m',
    '30 m s',
    '1h30m',
  ])('%j is not a duration', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each<[number, string]>([
    [0, '0s'],
    [1, '1ms'],
    [500, '500ms'],
    [1_000, '1s'],
    [1_500, '1500ms'],
    [30_000, '30s'],
    [59_000, '59s'],
    [60_000, '1m'],
    [90_000, '90s'],
    [1_800_000, '30m'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
    [7_200_000, '2h'],
    [86_400_000, '24h'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([1, 500, 1_000, 1_500, 60_000, 90_000, 3_600_000, 5_400_000, 123_456_789])(
    'round-trips %d ms through parseDuration',
    (ms) => {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    },
  );
});

describe('toSecondsArg', () => {
  // What coreutils `timeout` gets inside sudo: seconds, fractions allowed, an "s" suffix.
  it.each<[number, string]>([
    [1_000, '1s'],
    [30_000, '30s'],
    [60_000, '60s'],
    [1_800_000, '1800s'],
    [1_500, '1.5s'],
    [250, '0.25s'],
    [1, '0.001s'],
    [1_234, '1.234s'],
    [3_600_001, '3600.001s'],
  ])('%d ms → %s', (ms, arg) => {
    expect(toSecondsArg(ms)).toBe(arg);
  });

  it.each([1, 250, 1_500, 30_000, 1_800_000])('%d ms round-trips through parseDuration', (ms) => {
    expect(parseDuration(toSecondsArg(ms))).toBe(ms);
  });
});
