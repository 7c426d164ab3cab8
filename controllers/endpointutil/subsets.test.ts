import { describe, expect, it } from '@jest/globals';
import { repackSubsets, subsetsEqual } from './subsets.js';
import type { SubsetAddress } from './types.js';

const addr = (ip: string, uid = `uid-${ip}`): SubsetAddress => ({ ip, targetRef: { kind: 'Pod', name: `p-${ip}`, namespace: 'default', uid } });
const http = { name: 'http', port: 80, protocol: 'TCP' };
const dns = { name: 'dns', port: 53, protocol: 'UDP' };

describe('repackSubsets', () => {
  it('merges ports served by the same addresses and sorts addresses', () => {
    const packed = repackSubsets([
      { addresses: [addr('10.0.0.2')], ports: [http] },
      { addresses: [addr('10.0.0.1')], ports: [http] },
      { addresses: [addr('10.0.0.2')], ports: [dns] },
      { addresses: [addr('10.0.0.1')], ports: [dns] },
    ]);
    expect(packed).toHaveLength(1);
    expect(packed[0].addresses?.map((a) => a.ip)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(packed[0].ports).toHaveLength(2);
  });

  it('de-duplicates by IP and uid, not-ready winning over ready', () => {
    const packed = repackSubsets([
      { addresses: [addr('10.0.0.1'), addr('10.0.0.1')], ports: [http] },
      { notReadyAddresses: [addr('10.0.0.1')], ports: [http] },
      { addresses: [addr('10.0.0.1', 'other-uid')], ports: [http] },
    ]);
    expect(packed).toEqual([{ addresses: [addr('10.0.0.1', 'other-uid')], notReadyAddresses: [addr('10.0.0.1')], ports: [http] }]);
  });

  it('keeps port-less addresses in port-less subsets', () => {
    const packed = repackSubsets([{ addresses: [addr('10.0.0.1')] }, { addresses: [addr('10.0.0.2')], ports: [] }]);
    expect(packed).toEqual([{ addresses: [addr('10.0.0.1'), addr('10.0.0.2')] }]);
  });
});

describe('subsetsEqual', () => {
  it('ignores order, resourceVersion and absent-versus-empty lists', () => {
    const a = [{ addresses: [addr('10.0.0.1'), addr('10.0.0.2')], ports: [http, dns] }];
    const withVersion = { ...addr('10.0.0.2'), targetRef: { ...addr('10.0.0.2').targetRef, resourceVersion: '7' } };
    const b = [{ addresses: [withVersion, addr('10.0.0.1')], notReadyAddresses: [], ports: [dns, http] }];
    expect(subsetsEqual(a, b)).toBe(true);
    expect(subsetsEqual(a, [{ notReadyAddresses: a[0].addresses, ports: a[0].ports }])).toBe(false);
    expect(subsetsEqual([], undefined)).toBe(true);
  });

  it('tells apart addresses that differ in any compared field, a missing from an empty targetRef, and fields holding newlines', () => {
    const one = (address: SubsetAddress) => [{ addresses: [address], ports: [http] }];
    const base = addr('10.0.0.1');
    expect(subsetsEqual(one(base), one({ ...base }))).toBe(true);
    expect(subsetsEqual(one(base), one({ ...base, hostname: 'h' }))).toBe(false);
    expect(subsetsEqual(one(base), one({ ...base, nodeName: 'n' }))).toBe(false);
    expect(subsetsEqual(one(base), one({ ...base, targetRef: { ...base.targetRef, name: 'other' } }))).toBe(false);
    expect(subsetsEqual(one({ ip: '10.0.0.1' }), one({ ip: '10.0.0.1', targetRef: {} }))).toBe(false);
    expect(subsetsEqual(one({ ip: '10.0.0.1', hostname: 'a\nb' }), one({ ip: '10.0.0.1', hostname: 'a', nodeName: 'b' }))).toBe(false);
    expect(subsetsEqual(one({ ip: '10.0.0.1', hostname: 'a\nb' }), one({ ip: '10.0.0.1', hostname: 'a\nb' }))).toBe(true);
  });
});
