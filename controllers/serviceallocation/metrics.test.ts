import { describe, expect, it } from '@jest/globals';
import { ipClaim, nodePortClaim } from '../../allocators/service/claim-names.js';
import { claimObject } from '../../allocators/service/claim-objects.js';
import { serviceIPRange } from '../../allocators/service/ip-range.js';
import { nodePortRange } from '../../allocators/service/port-range.js';
import { cidrWithin } from './api-ranges.js';
import { rangeUsage } from './metrics.js';

describe('range usage', () => {
  it('counts claims per configured range and leaves out the rest', () => {
    const config = { ipRanges: [serviceIPRange('10.96.0.0/24'), serviceIPRange('fd00::/120')], nodePortRange: nodePortRange('30000-30009') };
    const owner = { namespace: 'default', name: 'web' };
    const claims = [ipClaim('10.96.0.10'), ipClaim('10.96.0.11'), ipClaim('10.97.0.1'), ipClaim('fd00::1'), nodePortClaim(30001), nodePortClaim(31000)].map((v) =>
      claimObject(v, owner),
    );
    expect(rangeUsage(config, claims)).toEqual([
      { kind: 'ClusterIP', range: '10.96.0.0/24', used: 2, free: 252 },
      { kind: 'ClusterIP', range: 'fd00::/120', used: 1, free: 254 },
      { kind: 'NodePort', range: '30000-30009', used: 1, free: 9 },
    ]);
  });
});

describe('cidrWithin', () => {
  it('holds for ranges inside the API server\'s', () => {
    const apiServer = serviceIPRange('10.96.0.0/12');
    expect(cidrWithin(serviceIPRange('10.96.0.0/16'), apiServer)).toBe(true);
    expect(cidrWithin(serviceIPRange('10.111.0.0/16'), apiServer)).toBe(true);
    expect(cidrWithin(serviceIPRange('10.112.0.0/16'), apiServer)).toBe(false);
    expect(cidrWithin(serviceIPRange('10.0.0.0/8'), apiServer)).toBe(false);
    expect(cidrWithin(serviceIPRange('fd00::/112'), apiServer)).toBe(false);
  });
});
