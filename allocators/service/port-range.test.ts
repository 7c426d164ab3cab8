import { describe, expect, it } from '@jest/globals';
import { scriptedRandom } from './bands.js';
import {
  DEFAULT_SERVICE_NODE_PORT_RANGE,
  bandOfPort,
  dynamicPortCandidates,
  formatPortRange,
  nodePortRange,
  parsePortRange,
  portInRange,
} from './port-range.js';

describe('parsePortRange', () => {
  it.each([
    ['30000-32767', 30000, 2768],
    ['30000+2767', 30000, 2768],
    ['30000', 30000, 1],
    [' 30000-32767 ', 30000, 2768],
    ['0-65535', 0, 65536],
    ['65535', 65535, 1],
    ['', 0, 0],
  ])('%p is base %p, size %p', (text, base, size) => {
    expect(parsePortRange(text)).toEqual({ base, size });
  });

  it.each([
    ['abc', 'strconv.Atoi: parsing "abc": invalid syntax'],
    ['30000-', 'strconv.Atoi: parsing "": invalid syntax'],
    ['-5', 'strconv.Atoi: parsing "": invalid syntax'],
    ['+5', 'strconv.Atoi: parsing "": invalid syntax'],
    ['30000-32767x', 'strconv.Atoi: parsing "32767x": invalid syntax'],
    ['99999999999999999999', 'strconv.Atoi: parsing "99999999999999999999": value out of range'],
    ['1-2+3', 'unable to parse port range: 1-2+3'],
    ['70000', 'the port range cannot be greater than 65535: 70000'],
    ['60000+10000', 'the port range cannot be greater than 65535: 60000+10000'],
    ['32767-30000', 'end port cannot be less than start port: 32767-30000'],
  ])('%p fails with %p', (text, message) => {
    expect(() => parsePortRange(text)).toThrow(message);
  });
});

describe('nodePortRange', () => {
  it('defaults to 30000-32767 with a static band of 86 ports', () => {
    const range = nodePortRange();
    expect(range).toEqual({ base: 30000, size: 2768, staticSize: 86 });
    expect(formatPortRange(range)).toBe(DEFAULT_SERVICE_NODE_PORT_RANGE);
    expect(nodePortRange('')).toEqual(range);
  });

  it('puts 30000-30085 in the static band and 30086-32767 in the dynamic band', () => {
    const range = nodePortRange();
    expect(bandOfPort(range, 30000)).toBe('static');
    expect(bandOfPort(range, 30085)).toBe('static');
    expect(bandOfPort(range, 30086)).toBe('dynamic');
    expect(bandOfPort(range, 32767)).toBe('dynamic');
    expect(bandOfPort(range, 29999)).toBeUndefined();
    expect(bandOfPort(range, 32768)).toBeUndefined();
  });

  it('handles a tiny range (30000-30001): no static band, both ports handed out', () => {
    const range = nodePortRange('30000-30001');
    expect(range.staticSize).toBe(0);
    expect([...dynamicPortCandidates(range, scriptedRandom(1n))]).toEqual([30001, 30000]);
  });

  it('handles a single port', () => {
    const range = nodePortRange('30000');
    expect(portInRange(range, 30000)).toBe(true);
    expect(portInRange(range, 30001)).toBe(false);
    expect([...dynamicPortCandidates(range, scriptedRandom())]).toEqual([30000]);
    expect(formatPortRange(range)).toBe('30000-30000');
  });

  it('with 17 ports leaves exactly one port in the dynamic band', () => {
    const range = nodePortRange('30000-30016');
    expect(range.staticSize).toBe(16);
    const candidates = [...dynamicPortCandidates(range, scriptedRandom(0n, 5n))];
    expect(candidates[0]).toBe(30016);
    expect(candidates.slice(1, 3)).toEqual([30005, 30006]);
    expect(candidates).toHaveLength(17);
  });

  it('rejects non-integers and the edges outside the range', () => {
    const range = nodePortRange();
    expect(portInRange(range, 30000.5)).toBe(false);
    expect(portInRange(range, 29999)).toBe(false);
    expect(portInRange(range, 32767)).toBe(true);
  });

  it('prints the empty range as ""', () => {
    expect(formatPortRange({ base: 0, size: 0 })).toBe('');
  });
});
