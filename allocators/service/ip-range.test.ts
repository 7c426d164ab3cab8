import { describe, expect, it } from '@jest/globals';
import { scriptedRandom } from './bands.js';
import {
  bandOfIP,
  dynamicIPCandidates,
  ipAtOffset,
  kubernetesServiceIP,
  offsetOfIP,
  parseServiceClusterIPRangeFlag,
  rangeContainsIP,
  rangeHoldingIP,
  serviceIPRange,
} from './ip-range.js';

describe('serviceIPRange', () => {
  it.each([
    ['10.96.0.0/28', 'IPv4', 14n, 0n],
    ['10.96.0.0/27', 'IPv4', 30n, 16n],
    ['10.96.0.0/24', 'IPv4', 254n, 16n],
    ['10.96.0.0/20', 'IPv4', 4094n, 256n],
    ['10.96.0.0/12', 'IPv4', (1n << 20n) - 2n, 256n],
    ['fd00:10:96::/112', 'IPv6', 65535n, 256n],
    ['fd00:10:96::/120', 'IPv6', 255n, 16n],
    ['fd00:10:96::/64', 'IPv6', (1n << 64n) - 1n, 256n],
  ])('%s (%s) has %p usable addresses and a static band of %p', (cidr, family, size, staticSize) => {
    const range = serviceIPRange(cidr);
    expect(range).toMatchObject({ cidr, family, size, staticSize });
  });

  it('masks bits beyond the prefix and prints the canonical CIDR', () => {
    expect(serviceIPRange('10.96.3.7/16').cidr).toBe('10.96.0.0/16');
    expect(serviceIPRange('FD00:10:96:0:0:0:0:5/112').cidr).toBe('fd00:10:96::/112');
  });

  it.each(['10.96.0.0', '10.96.0.0/33', '10.96.0.0/x', '10.96.0.0/-1', 'nope/24', '::ffff:10.0.0.0/104', ''])(
    '%p is not a CIDR',
    (cidr) => {
      expect(() => serviceIPRange(cidr)).toThrow(`invalid CIDR address: ${cidr}`);
    },
  );

  it('refuses IPv6 prefixes shorter than /64 like the IPAddress allocator', () => {
    expect(() => serviceIPRange('fd00::/48')).toThrow('shortest allowed prefix length for service CIDR is 64, got 48');
  });
});

describe('offsets and membership', () => {
  const v4 = serviceIPRange('10.96.0.0/24');
  const v6 = serviceIPRange('fd00:10:96::/112');

  it('starts at network+1 and never hands out the network or the IPv4 broadcast address', () => {
    expect(ipAtOffset(v4, 0n)).toBe('10.96.0.1');
    expect(ipAtOffset(v4, 253n)).toBe('10.96.0.254');
    expect(ipAtOffset(v4, 254n)).toBeUndefined();
    expect(ipAtOffset(v4, -1n)).toBeUndefined();
    expect(rangeContainsIP(v4, '10.96.0.0')).toBe(false);
    expect(rangeContainsIP(v4, '10.96.0.255')).toBe(false);
    expect(rangeContainsIP(v4, '10.96.1.1')).toBe(false);
    expect(kubernetesServiceIP(v4)).toBe('10.96.0.1');
  });

  it('excludes only the network address for IPv6: the all-ones address is usable', () => {
    expect(rangeContainsIP(v6, 'fd00:10:96::')).toBe(false);
    expect(rangeContainsIP(v6, 'fd00:10:96::ffff')).toBe(true);
    expect(offsetOfIP(v6, 'fd00:10:96::ffff')).toBe(65534n);
    expect(ipAtOffset(v6, 65534n)).toBe('fd00:10:96::ffff');
  });

  it('round-trips offset -> IP -> offset at the edges of every band', () => {
    for (const range of [v4, v6, serviceIPRange('10.0.0.0/28'), serviceIPRange('fd00::/64')]) {
      for (const offset of [0n, range.staticSize - 1n, range.staticSize, range.size - 1n]) {
        if (offset < 0n) continue;
        const ip = ipAtOffset(range, offset);
        expect(ip).toBeDefined();
        expect(offsetOfIP(range, ip as string)).toBe(offset);
      }
    }
  });

  it('accepts any spelling of an address but not another family', () => {
    expect(offsetOfIP(v4, '010.096.000.010')).toBe(9n);
    expect(offsetOfIP(v4, '::ffff:10.96.0.10')).toBe(9n);
    expect(offsetOfIP(v6, 'FD00:10:96:0:0:0:0:A')).toBe(9n);
    expect(offsetOfIP(v4, 'fd00:10:96::a')).toBeUndefined();
    expect(offsetOfIP(v4, 'garbage')).toBeUndefined();
  });

  it.each([
    ['10.96.0.1', 'static'],
    ['10.96.0.10', 'static'],
    ['10.96.0.16', 'static'],
    ['10.96.0.17', 'dynamic'],
    ['10.96.0.254', 'dynamic'],
    ['10.96.0.255', undefined],
  ])('/24: %s is in the %s band', (ip, band) => {
    expect(bandOfIP(v4, ip)).toBe(band);
  });

  it('/28 has no static band', () => {
    const range = serviceIPRange('10.96.0.0/28');
    expect(bandOfIP(range, '10.96.0.1')).toBe('dynamic');
    expect(bandOfIP(range, '10.96.0.14')).toBe('dynamic');
    expect(bandOfIP(range, '10.96.0.15')).toBeUndefined();
  });

  it('/112: the first 256 addresses are static', () => {
    expect(bandOfIP(v6, 'fd00:10:96::100')).toBe('static');
    expect(bandOfIP(v6, 'fd00:10:96::101')).toBe('dynamic');
  });

  it('/64: the static band is the first 256 addresses', () => {
    const range = serviceIPRange('fd00:10:96::/64');
    expect(bandOfIP(range, 'fd00:10:96::100')).toBe('static');
    expect(bandOfIP(range, 'fd00:10:96::101')).toBe('dynamic');
    expect(bandOfIP(range, 'fd00:10:96:0:ffff:ffff:ffff:ffff')).toBe('dynamic');
  });

  it('finds which of several ranges holds an IP', () => {
    const ranges = [serviceIPRange('10.96.0.0/24'), serviceIPRange('10.97.0.0/24')];
    expect(rangeHoldingIP(ranges, '10.97.0.5')?.cidr).toBe('10.97.0.0/24');
    expect(rangeHoldingIP(ranges, '10.98.0.5')).toBeUndefined();
  });
});

describe('dynamicIPCandidates', () => {
  it('walks the upper band from a random start, then the lower band', () => {
    const range = serviceIPRange('10.96.0.0/27');
    const candidates = [...dynamicIPCandidates(range, scriptedRandom(13n, 15n))];
    expect(candidates.slice(0, 2)).toEqual(['10.96.0.30', '10.96.0.17']);
    expect(candidates[13]).toBe('10.96.0.29');
    expect(candidates.slice(14, 16)).toEqual(['10.96.0.16', '10.96.0.1']);
    expect(candidates).toHaveLength(30);
    expect(candidates).not.toContain('10.96.0.0');
    expect(candidates).not.toContain('10.96.0.31');
  });

  it('on a /28 visits all 14 usable addresses with wrap-around', () => {
    const candidates = [...dynamicIPCandidates(serviceIPRange('10.96.0.0/28'), scriptedRandom(12n))];
    expect(candidates.slice(0, 3)).toEqual(['10.96.0.13', '10.96.0.14', '10.96.0.1']);
    expect(new Set(candidates).size).toBe(14);
  });

  it('on a /64 starts in the dynamic band and prints canonical IPv6', () => {
    const picks = dynamicIPCandidates(serviceIPRange('fd00:10:96::/64'), scriptedRandom((1n << 64n) - 258n));
    expect(picks.next().value).toBe('fd00:10:96:0:ffff:ffff:ffff:ffff');
    expect(picks.next().value).toBe('fd00:10:96::101');
  });
});

describe('parseServiceClusterIPRangeFlag', () => {
  it('reads one or two CIDRs, primary first', () => {
    expect(parseServiceClusterIPRangeFlag('10.96.0.0/12').map((r) => r.cidr)).toEqual(['10.96.0.0/12']);
    const dual = parseServiceClusterIPRangeFlag('fd00:10:96::/112,10.96.0.0/16');
    expect(dual.map((r) => r.family)).toEqual(['IPv6', 'IPv4']);
  });
  it('defaults to the deprecated 10.0.0.0/24', () => {
    expect(parseServiceClusterIPRangeFlag('').map((r) => r.cidr)).toEqual(['10.0.0.0/24']);
  });
  it('refuses what kube-apiserver refuses, with its messages', () => {
    expect(() => parseServiceClusterIPRangeFlag('10.0.0.0/24,fd00::/112,10.1.0.0/24')).toThrow(
      '--service-cluster-ip-range must not contain more than two entries',
    );
    expect(() => parseServiceClusterIPRangeFlag('10.0.0.0/24,10.1.0.0/24')).toThrow(
      '--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family',
    );
    expect(() => parseServiceClusterIPRangeFlag('10.0.0.0/30')).toThrow(
      'the service cluster IP range must be at least 8 IP addresses',
    );
    expect(parseServiceClusterIPRangeFlag('10.0.0.0/29')[0].size).toBe(6n);
  });
});
