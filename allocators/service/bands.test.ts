import { describe, expect, it } from '@jest/globals';
import {
  NODE_PORT_BAND_RULE,
  SERVICE_IP_BAND_RULE,
  bandOfOffset,
  cryptoRandomBelow,
  dynamicPickOrder,
  scriptedRandom,
  staticBandSize,
} from './bands.js';

describe('staticBandSize', () => {
  it('follows min(max(16, size/16), 256) for ClusterIPs, counting network and broadcast', () => {
    // /28, /27, /24, /23, /22, /20, /16 (or an IPv6 /112), /12, and an IPv6 /64.
    const sizes = [16n, 32n, 256n, 512n, 1024n, 4096n, 65536n, 1n << 20n, 1n << 64n];
    expect(sizes.map((size) => staticBandSize(size, SERVICE_IP_BAND_RULE))).toEqual([0n, 16n, 16n, 32n, 64n, 256n, 256n, 256n, 256n]);
  });

  it('follows min(max(16, size/32), 128) for NodePorts', () => {
    // 30000-30001, 16 ports, 17 ports, 544 ports, the default 30000-32767, 4096 ports, all 65536.
    const sizes = [2n, 16n, 17n, 544n, 2768n, 4096n, 65536n];
    expect(sizes.map((size) => staticBandSize(size, NODE_PORT_BAND_RULE))).toEqual([0n, 0n, 16n, 17n, 86n, 128n, 128n]);
  });
});

describe('bandOfOffset', () => {
  const range = { size: 30n, staticSize: 16n };
  it('puts [0, staticSize) in the static band and the rest in the dynamic band', () => {
    expect(bandOfOffset(range, 0n)).toBe('static');
    expect(bandOfOffset(range, 15n)).toBe('static');
    expect(bandOfOffset(range, 16n)).toBe('dynamic');
    expect(bandOfOffset(range, 29n)).toBe('dynamic');
  });
  it('knows nothing outside the range', () => {
    expect(bandOfOffset(range, -1n)).toBeUndefined();
    expect(bandOfOffset(range, 30n)).toBeUndefined();
  });
});

describe('dynamicPickOrder', () => {
  it('starts at a random offset of the upper band, wraps within it, then does the same in the lower band', () => {
    const random = scriptedRandom(3n, 2n);
    const order = [...dynamicPickOrder({ size: 8n, staticSize: 3n }, random)];
    // Upper band is offsets 3..7 (length 5), start 3 -> 6,7,3,4,5; lower band 0..2, start 2 -> 2,0,1.
    expect(order).toEqual([6n, 7n, 3n, 4n, 5n, 2n, 0n, 1n]);
    expect(random.bounds).toEqual([5n, 3n]);
  });

  it('draws the lower band start only once the upper band is exhausted', () => {
    const random = scriptedRandom(0n, 0n);
    const picks = dynamicPickOrder({ size: 40n, staticSize: 16n }, random);
    picks.next();
    expect(random.bounds).toEqual([24n]);
  });

  it('without a static band, covers the whole range once from the random start', () => {
    const order = [...dynamicPickOrder({ size: 14n, staticSize: 0n }, scriptedRandom(13n))];
    expect(order[0]).toBe(13n);
    expect(order[1]).toBe(0n);
    expect([...order].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: 14 }, (_, i) => BigInt(i)));
  });

  it('yields every offset exactly once whatever the start', () => {
    for (let start = 0n; start < 20n; start++) {
      const order = [...dynamicPickOrder({ size: 30n, staticSize: 16n }, scriptedRandom(start, start))];
      expect(new Set(order).size).toBe(30);
      expect(order.slice(0, 14).every((o) => o >= 16n)).toBe(true);
      expect(order.slice(14).every((o) => o < 16n)).toBe(true);
    }
  });

  it('is lazy, so a 2^64 band costs nothing until asked', () => {
    const picks = dynamicPickOrder({ size: 1n << 64n, staticSize: 256n }, scriptedRandom(5n));
    expect(picks.next().value).toBe(261n);
    expect(picks.next().value).toBe(262n);
  });

  it('yields nothing for an empty range', () => {
    expect([...dynamicPickOrder({ size: 0n, staticSize: 0n }, scriptedRandom())]).toEqual([]);
  });
});

describe('cryptoRandomBelow', () => {
  it('stays below the bound, for small and huge bounds', () => {
    for (let i = 0; i < 200; i++) {
      expect(cryptoRandomBelow(1n)).toBe(0n);
      const small = cryptoRandomBelow(3n);
      expect(small >= 0n && small < 3n).toBe(true);
      const huge = cryptoRandomBelow((1n << 64n) - 257n);
      expect(huge >= 0n && huge < (1n << 64n) - 257n).toBe(true);
    }
  });
  it('reaches every value of a small bound', () => {
    const seen = new Set<bigint>();
    for (let i = 0; i < 500; i++) seen.add(cryptoRandomBelow(5n));
    expect(seen.size).toBe(5);
  });
  it('refuses a non-positive bound', () => {
    expect(() => cryptoRandomBelow(0n)).toThrow(RangeError);
  });
});
