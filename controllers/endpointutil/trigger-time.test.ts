import { describe, expect, it } from '@jest/globals';
import { makePod, makeService } from '../../testing/endpoint-objects.js';
import { applyTriggerTime, computeTriggerTime, formatRFC3339Nano, timeToNanos } from './trigger-time.js';

describe('RFC 3339 times', () => {
  it('formats like Go RFC3339Nano in UTC', () => {
    expect(formatRFC3339Nano(timeToNanos('2026-01-02T03:04:05Z')!)).toBe('2026-01-02T03:04:05Z');
    expect(formatRFC3339Nano(timeToNanos('2026-01-02T03:04:05.120000Z')!)).toBe('2026-01-02T03:04:05.12Z');
    expect(formatRFC3339Nano(timeToNanos('2026-01-02T05:04:05.000000001+02:00')!)).toBe('2026-01-02T03:04:05.000000001Z');
    expect(timeToNanos('yesterday')).toBeUndefined();
  });
});

describe('computeTriggerTime', () => {
  const service = makeService({ creationTimestamp: '2026-01-01T00:00:00Z' });

  it('returns the Service creation time on the first sync', () => {
    const pods = [makePod('a', 0, { readySince: '2026-01-05T00:00:00Z' })];
    expect(computeTriggerTime(undefined, service, pods).triggerTime).toBe('2026-01-01T00:00:00Z');
  });

  it('then the earliest Ready transition newer than last time, or nothing', () => {
    const first = computeTriggerTime(undefined, service, [makePod('a', 0, { readySince: '2026-01-05T00:00:00Z' })]);
    const pods = [
      makePod('a', 0, { readySince: '2026-01-05T00:00:00Z' }), // unchanged
      makePod('b', 1, { readySince: '2026-01-07T00:00:00Z' }), // new
      makePod('c', 2, { readySince: '2026-01-06T00:00:00Z' }), // new, earliest
    ];
    const second = computeTriggerTime(first.state, service, pods);
    expect(second.triggerTime).toBe('2026-01-06T00:00:00Z');
    expect(computeTriggerTime(second.state, service, pods).triggerTime).toBeUndefined();
  });

  it('sets and removes the annotation', () => {
    expect(applyTriggerTime({ a: 'b' }, '2026-01-01T00:00:00.5Z')).toEqual({ a: 'b', 'endpoints.kubernetes.io/last-change-trigger-time': '2026-01-01T00:00:00.5Z' });
    expect(applyTriggerTime({ a: 'b', 'endpoints.kubernetes.io/last-change-trigger-time': 'x' }, undefined)).toEqual({ a: 'b' });
  });
});
