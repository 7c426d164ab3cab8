import { describe, expect, it } from '@jest/globals';
import { isSpecialIP, readIPFamily, readIPField } from './ip.js';

describe('readIPField', () => {
  it.each([
    ['10.1.2.3', 'IPv4', '10.1.2.3'],
    ['010.001.002.003', 'IPv4', '10.1.2.3'],
    ['fd00::0001', 'IPv6', 'fd00::1'],
    ['2001:DB8:0:0:0:0:0:1', 'IPv6', '2001:db8::1'],
    ['::ffff:192.0.2.1', 'IPv4', '192.0.2.1'],
  ])('%s is %s %s', (text, family, canonical) => {
    expect(readIPField(text)).toMatchObject({ family, canonical });
  });

  it.each(['', 'x', '1.2.3', '256.1.1.1', 'fe80::1%eth0', '1::2::3', 42, undefined])('rejects %p', (text) => {
    expect(readIPField(text)).toBeUndefined();
  });
});

describe('readIPFamily', () => {
  // The fast path must read exactly what readIPField reads, including the near misses it leaves to it.
  it.each(['10.1.2.3', '0.0.0.0', '255.255.255.255', '199.249.250.251', '256.1.1.1', '1.2.3.256', '01.2.3.4', '1.2.3.04', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4\n', '1..2.3', 'fd00::1', '::ffff:192.0.2.1', '', 7])(
    '%p as readIPField',
    (text) => {
      const pick = (ip: { family: string; canonical: string } | undefined) => ip && { family: ip.family, canonical: ip.canonical };
      expect(pick(readIPFamily(text))).toEqual(pick(readIPField(text)));
    },
  );
});

describe('isSpecialIP', () => {
  it.each(['0.0.0.0', '127.0.0.1', '169.254.1.1', '224.0.0.5', '::', '::1', 'fe80::1', 'ff02::1'])('%s is special', (text) => {
    expect(isSpecialIP(readIPField(text)!)).toBe(true);
  });
  it.each(['10.0.0.1', '239.1.1.1', 'fd00::1', 'ff05::1'])('%s is not', (text) => {
    expect(isSpecialIP(readIPField(text)!)).toBe(false);
  });
});
