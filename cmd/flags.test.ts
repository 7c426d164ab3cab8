import { describe, it, expect } from '@jest/globals';
import { clientFlags, clientTuning, parseBool, parseDuration } from './flags.js';

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
  it('reads the client flags, with defaults per command', () => {
    const defaults = Object.fromEntries(Object.entries(clientFlags({ qps: 100, burst: 150 })).map(([name, f]) => [name, f.default]));
    expect(defaults).toEqual({ 'kube-api-qps': '100', 'kube-api-burst': '150', 'watch-idle-timeout': '90s' });
    expect(clientTuning({ 'kube-api-qps': '2.5', 'kube-api-burst': '4', 'watch-idle-timeout': '0' })).toEqual({ qps: 2.5, burst: 4, watchIdleTimeoutMs: 0 });
    expect(() => clientTuning({ 'kube-api-qps': '-1', 'kube-api-burst': '4', 'watch-idle-timeout': '90s' })).toThrow('--kube-api-qps');
    expect(() => clientTuning({ 'kube-api-qps': '5', 'kube-api-burst': '0', 'watch-idle-timeout': '90s' })).toThrow('--kube-api-burst');
  });
});
