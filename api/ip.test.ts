import { describe, expect, it } from '@jest/globals';
import ipaddr from 'ipaddr.js';
import { canonicalIPSloppy, canonicalIPStrict, familyOfIP, formatIP, otherFamily, parseIPLiteral, parseIPSloppy, parseIPStrict } from './ip.js';

describe('parseIPSloppy / formatIP', () => {
  it.each([
    ['10.96.0.10', 'IPv4', '10.96.0.10'],
    ['0.0.0.0', 'IPv4', '0.0.0.0'],
    ['255.255.255.255', 'IPv4', '255.255.255.255'],
    // Kubernetes reads leading zeros as decimal, never octal.
    ['010.096.000.010', 'IPv4', '10.96.0.10'],
    ['2001:db8::a', 'IPv6', '2001:db8::a'],
    ['2001:DB8:0:0:0:0:0:A', 'IPv6', '2001:db8::a'],
    ['::', 'IPv6', '::'],
    ['::1', 'IPv6', '::1'],
    ['fe80::', 'IPv6', 'fe80::'],
    ['fd00:10:96::ffff', 'IPv6', 'fd00:10:96::ffff'],
    // IPv4-mapped IPv6 is IPv4 to the apiserver, and prints as IPv4.
    ['::ffff:10.96.0.10', 'IPv4', '10.96.0.10'],
    ['::ffff:a60:a', 'IPv4', '10.96.0.10'],
    // IPv4-compatible (deprecated) stays IPv6; ipaddr.js would wrongly map it.
    ['::1.2.3.4', 'IPv6', '::102:304'],
    ['64:ff9b::192.0.2.33', 'IPv6', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:1.2.3.4', 'IPv6', '1:2:3:4:5:6:102:304'],
    // Go accepts extra leading zeros in a group as long as the value fits.
    ['00002001:db8::1', 'IPv6', '2001:db8::1'],
  ])('%s is %s, printed %s', (text, family, printed) => {
    expect(familyOfIP(text)).toBe(family);
    expect(canonicalIPSloppy(text)).toBe(printed);
  });

  it.each([
    '',
    'None',
    '10.96.0',
    '10.96.0.0.1',
    '10.96.0.256',
    '10.96.0.-1',
    '0x0a.0.0.1',
    ' 10.96.0.1',
    '10.96.0.1 ',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    ':1::',
    '1:::2',
    '12345::',
    'fe80::1%eth0',
    '::1.2.3',
    '1.2.3.4::',
    '::1.2.3.4:5',
    '2001:db8::g',
    '10.0.0.1/24',
  ])('%p is not an IP address', (text) => {
    expect(parseIPSloppy(text)).toBeUndefined();
  });

  it('prints RFC 5952: only runs of two or more zero groups collapse, the first longest one wins', () => {
    expect(canonicalIPSloppy('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(canonicalIPSloppy('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1');
    expect(canonicalIPSloppy('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIPSloppy('0:0:1:0:0:0:0:0')).toBe('0:0:1::');
    expect(canonicalIPSloppy('1:0:0:0:0:0:0:0')).toBe('1::');
  });

  it('flags what strict validation refuses', () => {
    expect(parseIPLiteral('010.0.0.1')?.hasLeadingZeros).toBe(true);
    expect(parseIPLiteral('10.0.0.1')?.hasLeadingZeros).toBe(false);
    expect(parseIPLiteral('0.0.0.0')?.hasLeadingZeros).toBe(false);
    expect(parseIPLiteral('::ffff:010.0.0.1')?.hasLeadingZeros).toBe(true);
    expect(parseIPLiteral('02001:db8::1')?.hasLeadingZeros).toBe(true);
    expect(parseIPLiteral('::ffff:10.0.0.1')?.isIPv4Mapped).toBe(true);
    expect(parseIPLiteral('10.0.0.1')?.isIPv4Mapped).toBe(false);
  });

  it('agrees with ipaddr.js wherever both follow RFC 5952', () => {
    const samples = [
      '2001:db8::1',
      '2001:db8:85a3::8a2e:370:7334',
      'fd00::',
      '::2',
      'ff02::1:ff00:1',
      '2001:db8:1:2:3:4:5:6',
      'fe80::1:0:0:0',
      'fe80:0:0:1::',
    ];
    for (const text of samples) {
      expect(canonicalIPSloppy(text)).toBe(ipaddr.IPv6.parse(text).toRFC5952String());
      expect(canonicalIPSloppy(text.toUpperCase())).toBe(ipaddr.IPv6.parse(text).toRFC5952String());
    }
    for (const text of ['10.0.0.1', '192.168.255.254', '1.2.3.4']) {
      expect(canonicalIPSloppy(text)).toBe(ipaddr.IPv4.parse(text).toString());
    }
  });

  it('formats values of each family', () => {
    expect(formatIP({ family: 'IPv4', value: 0x0a60000an })).toBe('10.96.0.10');
    expect(formatIP({ family: 'IPv6', value: (1n << 128n) - 1n })).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(otherFamily('IPv4')).toBe('IPv6');
    expect(otherFamily('IPv6')).toBe('IPv4');
  });
});

describe('parseIPStrict', () => {
  it('parses addresses strictly', () => {
    expect(canonicalIPStrict('192.168.1.1')).toBe('192.168.1.1');
    expect(canonicalIPStrict('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(parseIPStrict('010.1.1.1')).toBeUndefined();
    expect(parseIPStrict('1.2.3')).toBeUndefined();
    expect(parseIPStrict('::ffff:1.2.3.4')).toBeUndefined();
    expect(parseIPStrict('fe80::1%eth0')).toBeUndefined();
    expect(parseIPStrict('')).toBeUndefined();
  });
});
