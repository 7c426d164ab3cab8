import { describe, expect, it } from '@jest/globals';
import { parseIPStrict } from '../../api/ip.js';
import { parseCIDR, parseRange, rangeToCIDRs, formatRange } from './addresses.js';
import { aggregateMessage, errorString } from '../../api/status.js';
import {
  exclusionOf,
  locateAddress,
  parsePools,
  poolCounters,
  poolRefusal,
  poolStatus,
  validateIPAddressPool,
  validateIPAddressPoolChange,
  type LBPool,
} from './pools.js';
import { selectorMatches, validateSelector } from './selector.js';
import { pool } from '../../testing/lb.js';

const one = (p: ReturnType<typeof pool>, namespaces: Parameters<typeof parsePools>[1] = []): LBPool => {
  const parsed = parsePools([p], namespaces);
  expect(parsed.invalid).toEqual(new Map());
  return parsed.pools[0];
};
const messages = (p: ReturnType<typeof pool>): string[] => validateIPAddressPool(p).map((e) => errorString(e));
const ip = (s: string) => parseIPStrict(s) ?? (() => { throw new Error(s); })();

describe('address parsing', () => {
  it('rejects a CIDR with host bits set and says what to write instead', () => {
    expect(parseCIDR('192.168.1.10/24')).toEqual({
      ok: false,
      detail: 'host bits are set; write 192.168.1.0/24 for the whole network or 192.168.1.10/32 for this one address',
    });
    expect(parseCIDR('2001:db8::1/64')).toMatchObject({ ok: false, detail: expect.stringContaining('2001:db8::/64') });
    expect(parseCIDR('192.168.1.10/32')).toMatchObject({ ok: true, value: { length: 32 } });
    expect(parseCIDR('192.168.1.0/33')).toMatchObject({ ok: false, detail: 'prefix length must be an integer between 0 and 32' });
    expect(parseCIDR('192.168.1.0/024')).toMatchObject({ ok: false });
  });

  it('parses ranges with spaces around the dash and refuses reversed or mixed ones', () => {
    expect(parseRange(' 10.0.0.1 - 10.0.0.3 ')).toMatchObject({ ok: true, value: { family: 'IPv4', first: 0x0a000001n, last: 0x0a000003n } });
    expect(parseRange('10.0.0.3-10.0.0.1')).toEqual({ ok: false, detail: 'start IP 10.0.0.3 is after the end IP 10.0.0.1' });
    expect(parseRange('10.0.0.1-::1')).toEqual({ ok: false, detail: 'start and end must be of the same IP family' });
  });

  it('covers a range with the minimal CIDRs', () => {
    const r = (s: string) => {
      const p = parseRange(s);
      if (!p.ok) throw new Error(p.detail);
      return p.value;
    };
    expect(rangeToCIDRs(r('192.168.9.1-192.168.9.5'))).toEqual(['192.168.9.1/32', '192.168.9.2/31', '192.168.9.4/31']);
    expect(rangeToCIDRs(r('10.0.0.0-10.0.255.255'))).toEqual(['10.0.0.0/16']);
    expect(rangeToCIDRs(r('0.0.0.0-255.255.255.255'))).toEqual(['0.0.0.0/0']);
    expect(rangeToCIDRs(r('2001:db8::-2001:db8::ffff'))).toEqual(['2001:db8::/112']);
    expect(formatRange(r('10.0.0.4-10.0.0.7'))).toBe('10.0.0.4/30');
    expect(formatRange(r('10.0.0.4-10.0.0.8'))).toBe('10.0.0.4-10.0.0.8');
  });
});

describe('pool validation', () => {
  it('accepts a MetalLB pool and applies the defaults', () => {
    const p = one(pool('prod', ['192.168.10.0/24', '192.168.9.1-192.168.9.5', 'fc00:f853:ccd:e799::/124']));
    expect(p).toMatchObject({ name: 'prod', autoAssign: true, avoidBuggyIPs: false, allowNetworkAndBroadcast: false, disabled: false, priority: 0 });
    expect(p.namespaces).toBeUndefined();
    expect([...p.families]).toEqual(['IPv4', 'IPv6']);
  });

  it('reports every problem with its field path, the way apimachinery prints it', () => {
    expect(messages(pool('p', []))).toEqual(['spec.addresses: Required value: pool has no addresses defined']);
    expect(messages(pool('p', ['192.168.1.10/24', '10.0.0.9-10.0.0.1', 'banana', '10.1.0.1']))).toEqual([
      'spec.addresses[0]: Invalid value: "192.168.1.10/24": host bits are set; write 192.168.1.0/24 for the whole network or 192.168.1.10/32 for this one address',
      'spec.addresses[1]: Invalid value: "10.0.0.9-10.0.0.1": start IP 10.0.0.9 is after the end IP 10.0.0.1',
      'spec.addresses[2]: Invalid value: "banana": must be a CIDR (a single address is written /32 or /128) or a range a-b',
      'spec.addresses[3]: Invalid value: "10.1.0.1": must be a CIDR (a single address is written /32 or /128) or a range a-b',
    ]);
    expect(
      messages(
        pool('p', ['10.0.0.0/24'], {
          serviceAllocation: {
            priority: -1,
            namespaces: ['a', 'b', 'a'],
            serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'In' }] }],
            namespaceSelectors: [{ matchExpressions: [{ key: 'x', operator: 'Near', values: ['y'] }] }],
          },
        }),
      ),
    ).toEqual([
      'spec.serviceAllocation.priority: Invalid value: -1: must be an integer greater than or equal to 0',
      'spec.serviceAllocation.namespaces[2]: Duplicate value: "a"',
      'spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].operator: Unsupported value: "Near": supported values: "In", "NotIn", "Exists", "DoesNotExist"',
      "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
    ]);
  });

  it('detects overlaps inside a pool and across pools', () => {
    expect(messages(pool('p', ['10.0.0.0/24', '10.0.0.200-10.0.1.5']))).toEqual([
      'spec.addresses[1]: Invalid value: "10.0.0.200-10.0.1.5": overlaps with spec.addresses[0] "10.0.0.0/24" of the same pool',
    ]);
    const existing = [pool('a', ['1.1.1.1-1.1.1.100']), pool('b', ['2001:db8::/64'])];
    expect(aggregateMessage(validateIPAddressPoolChange(pool('c', ['1.1.1.15-1.1.1.20', '2001:db8::5/128']), existing))).toBe(
      '[spec.addresses[0]: Invalid value: "1.1.1.15-1.1.1.20": overlaps with already defined "1.1.1.1-1.1.1.100" in IPAddressPool "a", ' +
        'spec.addresses[1]: Invalid value: "2001:db8::5/128": overlaps with already defined "2001:db8::/64" in IPAddressPool "b"]',
    );
    // Updating a pool is checked against the others, not against its old self; touching ranges do not overlap.
    expect(validateIPAddressPoolChange(pool('a', ['1.1.1.1-1.1.1.200']), existing)).toEqual([]);
    expect(validateIPAddressPoolChange(pool('c', ['1.1.1.101/32']), existing)).toEqual([]);
  });

  it('keeps the older of two overlapping pools when the webhook was bypassed, and says why the other is out', () => {
    const parsed = parsePools([pool('new', ['10.0.0.128/25'], {}, '2026-03-01T00:00:00Z'), pool('old', ['10.0.0.0/24'], {}, '2026-01-01T00:00:00Z')]);
    expect(parsed.pools.map((p) => p.name)).toEqual(['old']);
    expect(aggregateMessage(parsed.invalid.get('new') ?? [])).toBe(
      'spec.addresses[0]: Invalid value: "10.0.0.128/25": overlaps with already defined "10.0.0.0/24" in IPAddressPool "old"',
    );
  });

  it('orders pools deterministically: serviceAllocation pools by priority (0 last), then the rest, ties by name', () => {
    const parsed = parsePools([
      pool('zeta', ['10.0.1.0/24']),
      pool('alpha', ['10.0.2.0/24']),
      pool('p0', ['10.0.3.0/24'], { serviceAllocation: { namespaces: ['x'] } }),
      pool('p20', ['10.0.4.0/24'], { serviceAllocation: { priority: 20 } }),
      pool('p10b', ['10.0.5.0/24'], { serviceAllocation: { priority: 10 } }),
      pool('p10a', ['10.0.6.0/24'], { serviceAllocation: { priority: 10 } }),
    ]);
    expect(parsed.pools.map((p) => p.name)).toEqual(['p10a', 'p10b', 'p20', 'p0', 'alpha', 'zeta']);
  });

  it('resolves namespace selectors and applies the namespace and service-selector restrictions', () => {
    const p = one(
      pool('p', ['10.0.0.0/24'], {
        serviceAllocation: { namespaces: ['listed'], namespaceSelectors: [{ matchLabels: { team: 'a' } }], serviceSelectors: [{ matchLabels: { tier: 'web' } }] },
      }),
      [{ metadata: { name: 'team-a', labels: { team: 'a' } } }, { metadata: { name: 'team-b', labels: { team: 'b' } } }],
    );
    expect([...(p.namespaces ?? [])].sort()).toEqual(['listed', 'team-a']);
    expect(poolRefusal(p, 'team-a', { tier: 'web' })).toBeUndefined();
    expect(poolRefusal(p, 'team-b', { tier: 'web' })).toBe('IPAddressPool "p" serves only the namespaces of its serviceAllocation, not "team-b"');
    expect(poolRefusal(p, 'listed', { tier: 'db' })).toBe('IPAddressPool "p" serves only Services matching its serviceAllocation.serviceSelectors');
    const priorityOnly = one(pool('q', ['10.0.1.0/24'], { serviceAllocation: { priority: 5 } }));
    expect(poolRefusal(priorityOnly, 'anything', undefined)).toBeUndefined();
  });
});

describe('label selectors', () => {
  it('matches like metav1.LabelSelector', () => {
    expect(selectorMatches({}, undefined)).toBe(true);
    const s = {
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['a', 'b'] },
        { key: 'canary', operator: 'DoesNotExist' },
        { key: 'zone', operator: 'NotIn', values: ['z'] },
        { key: 'app', operator: 'Exists' },
      ],
    };
    expect(selectorMatches(s, { app: 'web', tier: 'b' })).toBe(true);
    expect(selectorMatches(s, { app: 'web', tier: 'b', zone: 'z' })).toBe(false);
    expect(selectorMatches(s, { app: 'web', tier: 'b', canary: '' })).toBe(false);
    expect(selectorMatches(s, { app: 'web' })).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, { a: '1' })).toBe(false);
    expect(validateSelector({ matchLabels: { 'bad key!': 'v' }, matchExpressions: [{ key: 'k', operator: 'Exists', values: ['x'] }] }, 's').map((e) => errorString(e))).toEqual([
      expect.stringMatching(/^s\.matchLabels: Invalid value: "bad key!": name part must consist/),
      "s.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
    ]);
  });
});

describe('exclusions and capacity', () => {
  const at = (p: LBPool, s: string) => {
    const loc = locateAddress([p], ip(s));
    return loc && (loc.exclusion ?? 'ok');
  };

  it('skips network and broadcast of CIDR entries unless allowed, never in ranges, /31 or /32', () => {
    const p = one(pool('p', ['10.0.0.0/24', '10.0.1.0/31', '10.0.2.0-10.0.2.255', '2001:db8::/120', '10.0.3.7/32']));
    expect(at(p, '10.0.0.0')).toBe('it is the network address of 10.0.0.0/24 (set allowNetworkAndBroadcast to use it)');
    expect(at(p, '10.0.0.255')).toBe('it is the broadcast address of 10.0.0.0/24 (set allowNetworkAndBroadcast to use it)');
    expect(at(p, '10.0.0.1')).toBe('ok');
    expect(at(p, '10.0.1.0')).toBe('ok');
    expect(at(p, '10.0.2.0')).toBe('ok');
    expect(at(p, '10.0.3.7')).toBe('ok');
    expect(at(p, '2001:db8::')).toBe('it is the subnet-router anycast address of 2001:db8::/120 (set allowNetworkAndBroadcast to use it)');
    expect(at(p, '2001:db8::ff')).toBe('ok');
    expect(at(p, '10.9.9.9')).toBeUndefined();
    const allowed = one(pool('p', ['10.0.0.0/24'], { allowNetworkAndBroadcast: true }));
    expect(at(allowed, '10.0.0.0')).toBe('ok');
    expect(poolCounters(allowed, []).availableIPv4).toBe(256);
  });

  it('avoidBuggyIPs skips .0 and .255 in every /24, including inside ranges and smaller CIDRs', () => {
    const p = one(pool('p', ['10.0.0.250-10.0.1.5', '10.0.2.0/27'], { avoidBuggyIPs: true, allowNetworkAndBroadcast: true }));
    expect(at(p, '10.0.0.255')).toBe('it ends in .0 or .255 and the pool sets avoidBuggyIPs');
    expect(at(p, '10.0.1.0')).toBe('it ends in .0 or .255 and the pool sets avoidBuggyIPs');
    expect(at(p, '10.0.2.31')).toBe('ok'); // a /27 keeps its own last address: not a .255
    expect(exclusionOf(p, p.entries[1], ip('10.0.2.0').value)).toBe('it ends in .0 or .255 and the pool sets avoidBuggyIPs');
    // 12 addresses in the range minus .255 and .0; 32 in the /27 minus .0.
    expect(poolCounters(p, [])).toEqual({ assignedIPv4: 0, availableIPv4: 10 + 31, assignedIPv6: 0, availableIPv6: 0 });
  });

  it('counts capacity and use per family, with huge IPv6 pools capped at 2^53-1', () => {
    expect(poolCounters(one(pool('p', ['10.0.0.0/24'])), [ip('10.0.0.1'), ip('10.0.0.1'), ip('10.0.0.2')])).toEqual({
      assignedIPv4: 2,
      availableIPv4: 252,
      assignedIPv6: 0,
      availableIPv6: 0,
    });
    // .0 and .255 are both network/broadcast and "buggy": counted once.
    expect(poolCounters(one(pool('p', ['10.0.0.0/24'], { avoidBuggyIPs: true })), []).availableIPv4).toBe(254);
    expect(poolCounters(one(pool('p', ['10.0.0.0/16'], { avoidBuggyIPs: true })), []).availableIPv4).toBe(65536 - 512);
    expect(poolCounters(one(pool('p', ['2001:db8::/64', '10.0.0.7/32'])), [ip('2001:db8::1')])).toEqual({
      assignedIPv4: 0,
      availableIPv4: 1,
      assignedIPv6: 1,
      availableIPv6: Number.MAX_SAFE_INTEGER,
    });
    expect(poolCounters(one(pool('p', ['2001:db8::/120'])), []).availableIPv6).toBe(255);
  });

  it('builds the pool status: counters plus Valid and Disabled conditions', () => {
    const parsed = parsePools([pool('good', ['10.0.0.0/30']), pool('bad', ['10.1.0.7/24']), pool('off', ['10.2.0.0/24'], { disabled: true })]);
    expect(poolStatus('good', parsed, new Map([['good', [ip('10.0.0.1')]]]))).toEqual({
      assignedIPv4: 1,
      availableIPv4: 1,
      assignedIPv6: 0,
      availableIPv6: 0,
      conditions: [
        { type: 'Valid', status: 'True', reason: 'Valid', message: 'the pool is in use' },
        { type: 'Disabled', status: 'False', reason: 'Enabled', message: 'the pool hands out addresses' },
      ],
    });
    expect(poolStatus('bad', parsed, new Map()).conditions[0]).toEqual({
      type: 'Valid',
      status: 'False',
      reason: 'InvalidSpec',
      message: 'spec.addresses[0]: Invalid value: "10.1.0.7/24": host bits are set; write 10.1.0.0/24 for the whole network or 10.1.0.7/32 for this one address',
    });
    expect(poolStatus('off', parsed, new Map()).conditions[1]).toMatchObject({ status: 'True', reason: 'Draining' });
  });
});
