import { describe, it, expect } from '@jest/globals';
import { parseBool, parseDuration } from './flags.js';

describe('flags', () => {
  it('parses durations', () => {
    expect(parseDuration('15s', 'x')).toBe(15_000);
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(parseDuration('2m', 'x')).toBe(120_000);
    expect(parseDuration('1.5', 'x')).toBe(1500);
    expect(() => parseDuration('soon', 'lease')).toThrow('--lease: invalid duration "soon"');
  });
  it('parses booleans', () => {
    expect(parseBool('false', 'x')).toBe(false);
    expect(parseBool(true, 'x')).toBe(true);
    expect(() => parseBool('maybe', 'leader-elect')).toThrow('--leader-elect');
  });
});
