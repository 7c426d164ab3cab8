import { describe, expect, it } from '@jest/globals';
import { type ClaimValue, claimName, claimValueFromName, ipClaim, nodePortClaim } from './claim-names.js';
import { formatIP } from '../../api/ip.js';

/** DNS-1123 label: what any Kubernetes object name may be. */
const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A small deterministic generator, so the property tests do not depend on the run. */
function* lcg(seed: bigint, count: number, bits: bigint): Generator<bigint> {
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    const wide = (state << 64n) | ((state * 0x9e3779b97f4a7c15n) & ((1n << 64n) - 1n));
    yield wide & ((1n << bits) - 1n);
  }
}

describe('claim names', () => {
  it.each([
    [ipClaim('10.96.0.10'), 'ipv4-10-96-0-10'],
    [ipClaim('0.0.0.0'), 'ipv4-0-0-0-0'],
    [ipClaim('255.255.255.255'), 'ipv4-255-255-255-255'],
    [ipClaim('2001:db8::a'), 'ipv6-2001-db8-0-0-0-0-0-a'],
    [ipClaim('::'), 'ipv6-0-0-0-0-0-0-0-0'],
    [ipClaim('fe80::'), 'ipv6-fe80-0-0-0-0-0-0-0'],
    [ipClaim('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 'ipv6-ffff-ffff-ffff-ffff-ffff-ffff-ffff-ffff'],
    [nodePortClaim(30080), 'nodeport-30080'],
    [nodePortClaim(1), 'nodeport-1'],
    [nodePortClaim(65535), 'nodeport-65535'],
  ])('%j is named %s', (value, name) => {
    expect(claimName(value)).toBe(name);
    expect(claimValueFromName(name)).toEqual(value);
    expect(name).toMatch(DNS_1123_LABEL);
    expect(name.length).toBeLessThanOrEqual(63);
  });

  it('names every spelling of an address alike, since the value is canonical', () => {
    expect(claimName(ipClaim('010.096.000.010'))).toBe('ipv4-10-96-0-10');
    expect(claimName(ipClaim('::ffff:10.96.0.10'))).toBe('ipv4-10-96-0-10');
    expect(claimName(ipClaim('2001:DB8:0:0:0:0:0:A'))).toBe('ipv6-2001-db8-0-0-0-0-0-a');
    expect(ipClaim('2001:DB8:0:0:0:0:0:A')).toEqual({ kind: 'ip', family: 'IPv6', ip: '2001:db8::a' });
  });

  it.each([
    'ipv4-10-96-0-010',
    'ipv4-10-96-0-256',
    'ipv4-10-96-0',
    'ipv4-10.96.0.10',
    'ipv6-2001-0db8-0-0-0-0-0-a',
    'ipv6-2001-DB8-0-0-0-0-0-a',
    'ipv6-2001-db8--a',
    'ipv6-2001-db8-0-0-0-0-0',
    'ipv6-0-0-0-0-0-ffff-a60-a',
    'nodeport-030080',
    'nodeport-0',
    'nodeport-65536',
    'nodeport-',
    'port-30080',
    '10.96.0.10',
    '',
  ])('%p decodes to nothing', (name) => {
    expect(claimValueFromName(name)).toBeUndefined();
  });

  it('refuses values that are not addresses or ports', () => {
    expect(() => ipClaim('10.96.0.300')).toThrow('not an IP address');
    expect(() => nodePortClaim(0)).toThrow('not a port number');
    expect(() => nodePortClaim(30080.5)).toThrow('not a port number');
    expect(() => claimName({ kind: 'ip', family: 'IPv6', ip: '10.96.0.1' })).toThrow('not an IPv6 address');
  });

  it('round-trips and stays injective over many values of each kind', () => {
    const values: ClaimValue[] = [];
    for (const v of lcg(1n, 2000, 32n)) values.push(ipClaim(formatIP({ family: 'IPv4', value: v })));
    for (const v of lcg(2n, 2000, 128n)) {
      // The IPv4-mapped block is IPv4 (and named so); keep this list to genuine IPv6 values.
      if (v >> 32n !== 0xffffn) values.push(ipClaim(formatIP({ family: 'IPv6', value: v })));
    }
    for (const v of lcg(3n, 200, 16n)) values.push(nodePortClaim(Number(v % 65535n) + 1));
    // Small groups in IPv6, where a careless encoding would collide.
    for (let i = 0; i < 64; i++) values.push(ipClaim(formatIP({ family: 'IPv6', value: BigInt(i) << BigInt((i % 8) * 16) })));

    const byName = new Map<string, string>();
    for (const value of values) {
      const name = claimName(value);
      expect(name).toMatch(DNS_1123_LABEL);
      expect(claimValueFromName(name)).toEqual(value);
      const key = JSON.stringify(value);
      const previous = byName.get(name);
      if (previous !== undefined) expect(previous).toBe(key);
      byName.set(name, key);
    }
    const distinctValues = new Set(values.map((v) => JSON.stringify(v)));
    expect(byName.size).toBe(distinctValues.size);
  });
});
