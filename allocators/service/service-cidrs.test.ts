import { describe, expect, it } from '@jest/globals';
import { type RandomBelow, scriptedRandom } from './bands.js';
import { prng } from '../../testing/prng.js';
import { type ServiceCIDRObject, pickOrder, serviceCIDRAllocatable, serviceCIDRRanges } from './service-cidrs.js';

const cidr = (name: string, cidrs: string[], extra: { ready?: 'True' | 'False'; deleting?: boolean; created?: string } = {}): ServiceCIDRObject => ({
  metadata: { name, creationTimestamp: extra.created ?? '2026-01-01T00:00:00Z', ...(extra.deleting ? { deletionTimestamp: '2026-01-02T00:00:00Z' } : {}) },
  spec: { cidrs },
  ...(extra.ready ? { status: { conditions: [{ type: 'Ready', status: extra.ready }] } } : {}),
});
const names = (ranges: { cidr: string }[]) => ranges.map((r) => r.cidr);

describe('serviceCIDRAllocatable (syncAllocators)', () => {
  it('is ready with Ready=True or no Ready condition, and not while being deleted', () => {
    expect(serviceCIDRAllocatable(cidr('a', ['10.0.0.0/24']))).toBe(true);
    expect(serviceCIDRAllocatable(cidr('a', ['10.0.0.0/24'], { ready: 'True' }))).toBe(true);
    expect(serviceCIDRAllocatable(cidr('a', ['10.0.0.0/24'], { ready: 'False' }))).toBe(false);
    expect(serviceCIDRAllocatable(cidr('a', ['10.0.0.0/24'], { ready: 'True', deleting: true }))).toBe(false);
  });
});

describe('serviceCIDRRanges', () => {
  it('lists `kubernetes` first, then by creation, and keeps deleting ones only as existing', () => {
    const ranges = serviceCIDRRanges(
      [
        cidr('extra-b', ['10.250.0.0/28'], { created: '2026-01-03T00:00:00Z' }),
        cidr('going', ['10.251.0.0/28'], { deleting: true }),
        cidr('extra-a', ['10.249.0.0/28'], { created: '2026-01-02T00:00:00Z' }),
        cidr('kubernetes', ['10.96.0.0/16'], { created: '2026-01-05T00:00:00Z' }),
      ],
      ['IPv4'],
    );
    expect(names(ranges.allocatable)).toEqual(['10.96.0.0/16', '10.249.0.0/28', '10.250.0.0/28']);
    expect(names(ranges.existing)).toEqual(['10.96.0.0/16', '10.251.0.0/28', '10.249.0.0/28', '10.250.0.0/28']);
  });

  it('ignores families the API server does not serve, and orders served ones as it does', () => {
    const objects = [cidr('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/108']), cidr('v6', ['fd00:99::/112'])];
    expect(names(serviceCIDRRanges(objects, ['IPv4']).allocatable)).toEqual(['10.96.0.0/16']);
    expect(names(serviceCIDRRanges(objects, ['IPv6', 'IPv4']).allocatable)).toEqual(['fd00:10:96::/108', 'fd00:99::/112', '10.96.0.0/16']);
  });

  it('has one range per CIDR, ready while any ServiceCIDR listing it is', () => {
    const same = [cidr('a', ['10.250.0.0/28'], { deleting: true }), cidr('b', ['10.250.0.0/28'])];
    expect(names(serviceCIDRRanges(same, ['IPv4']).allocatable)).toEqual(['10.250.0.0/28']);
    expect(names(serviceCIDRRanges([same[0]], ['IPv4']).allocatable)).toEqual([]);
    expect(names(serviceCIDRRanges(same, ['IPv4']).existing)).toEqual(['10.250.0.0/28']);
  });

  it('keeps overlapping CIDRs apart, as upstream keeps one allocator each', () => {
    const ranges = serviceCIDRRanges([cidr('kubernetes', ['10.96.0.0/16']), cidr('inner', ['10.96.0.0/28'])], ['IPv4']);
    expect(names(ranges.allocatable)).toEqual(['10.96.0.0/16', '10.96.0.0/28']);
  });

  it('skips a CIDR no allocator can be built for', () => {
    expect(names(serviceCIDRRanges([cidr('wide', ['fd00::/48'])], ['IPv6']).existing)).toEqual([]);
  });
});

describe('pickOrder (Go map iteration: a random order per pick)', () => {
  it('is a permutation drawn from the random source', () => {
    expect(pickOrder(['a', 'b', 'c'], scriptedRandom(2n, 1n))).toEqual(['a', 'b', 'c']);
    expect(pickOrder(['a', 'b', 'c'], scriptedRandom(0n, 0n))).toEqual(['b', 'c', 'a']);
    expect(pickOrder(['a'], scriptedRandom())).toEqual(['a']);
  });

  it('gives every range the first place about equally often', () => {
    const next = prng(11);
    const random: RandomBelow = (bound) => BigInt(Math.floor(next() * Number(bound)));
    const first = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const [head] = pickOrder(['a', 'b', 'c'], random);
      first.set(head, (first.get(head) ?? 0) + 1);
    }
    for (const key of ['a', 'b', 'c']) expect(first.get(key)).toBeGreaterThan(800);
  });
});
