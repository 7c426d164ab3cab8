import { describe, it, expect } from '@jest/globals';
import { decide, microTime, type LeaseRecord } from './leader-election.js';

const T0 = Date.UTC(2026, 0, 1);

describe('leader election decisions', () => {
  it('acquires a lease nobody has created, starting transitions at 0', () => {
    const d = decide('a', {}, undefined, T0, 15);
    expect(d.action).toBe('acquire');
    if (d.action !== 'acquire') return;
    expect(d.record).toEqual({ holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: microTime(T0), renewTime: microTime(T0), leaseTransitions: 0 });
  });

  it('renews its own lease without changing acquireTime or transitions', () => {
    const held: LeaseRecord = { holderIdentity: 'a', acquireTime: microTime(T0), renewTime: microTime(T0), leaseDurationSeconds: 15, leaseTransitions: 3 };
    const d = decide('a', held, undefined, T0 + 2000, 15);
    expect(d).toEqual({ action: 'renew', record: { ...held, renewTime: microTime(T0 + 2000) } });
  });

  it('waits while another holder renews, whatever the clocks say', () => {
    const other: LeaseRecord = { holderIdentity: 'b', renewTime: microTime(T0 - 3_600_000), leaseDurationSeconds: 15, leaseTransitions: 1 };
    // First sight: the record's own (skewed) renewTime is ignored; our observation starts now.
    expect(decide('a', other, undefined, T0, 15)).toEqual({ action: 'wait', holder: 'b' });
    const renewed = { ...other, renewTime: microTime(T0 + 10_000) };
    expect(decide('a', renewed, { record: other, observedAtMs: T0 }, T0 + 20_000, 15).action).toBe('wait');
  });

  it('takes over once the record has not changed for the lease duration, counting a transition', () => {
    const other: LeaseRecord = { holderIdentity: 'b', renewTime: microTime(T0), leaseDurationSeconds: 15, leaseTransitions: 1 };
    const seen = { record: other, observedAtMs: T0 };
    expect(decide('a', other, seen, T0 + 14_999, 15).action).toBe('wait');
    const d = decide('a', other, seen, T0 + 15_000, 15);
    expect(d.action).toBe('acquire');
    if (d.action === 'acquire') expect(d.record.leaseTransitions).toBe(2);
  });

  it("uses the holder's lease duration, not ours", () => {
    const other: LeaseRecord = { holderIdentity: 'b', renewTime: microTime(T0), leaseDurationSeconds: 60, leaseTransitions: 0 };
    expect(decide('a', other, { record: other, observedAtMs: T0 }, T0 + 30_000, 15).action).toBe('wait');
  });

  it('acquires a released lease at once', () => {
    const released: LeaseRecord = { leaseDurationSeconds: 1, renewTime: microTime(T0), leaseTransitions: 4 };
    const d = decide('a', released, undefined, T0, 15);
    expect(d.action).toBe('acquire');
    if (d.action === 'acquire') expect(d.record.leaseTransitions).toBe(5);
  });

  it('formats MicroTime with microseconds', () => {
    expect(microTime(Date.UTC(2026, 10, 21, 23, 59, 1, 250))).toBe('2026-11-21T23:59:01.250000Z');
  });
});
