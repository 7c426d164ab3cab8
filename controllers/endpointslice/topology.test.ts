import { describe, expect, it } from '@jest/globals';
import { makeNode } from '../../testing/endpoint-objects.js';
import { cpuMillis, isServiceOverloaded, topologyHintsEnabled, validTrafficDistribution, zoneRatiosFromNodes } from './topology.js';

describe('cpuMillis', () => {
  it.each([
    ['4', 4000],
    ['3500m', 3500],
    ['1.5', 1500],
    ['0.0015', 2],
    ['2k', 2_000_000],
    ['1e3', 1_000_000],
    ['garbage', 0],
    [undefined, 0],
  ])('%p is %i millicores', (quantity, millis) => {
    expect(cpuMillis(quantity)).toBe(millis);
  });
});

describe('zoneRatiosFromNodes', () => {
  it('shares CPU per zone over ready worker nodes', () => {
    const ratios = zoneRatiosFromNodes([
      makeNode('a', 'z1', { cpu: '3' }),
      makeNode('b', 'z2', { cpu: '1' }),
      makeNode('c', undefined, { ready: false }), // not ready: ignored even without a zone
      makeNode('cp', 'z3', { labels: { 'node-role.kubernetes.io/control-plane': '' } }),
    ]);
    expect(ratios && Object.fromEntries(ratios)).toEqual({ z1: 0.75, z2: 0.25 });
  });

  it('gives up when a node lacks zone or CPU, or there is a single zone', () => {
    expect(zoneRatiosFromNodes([makeNode('a', 'z1'), makeNode('b')])).toBeNull();
    expect(zoneRatiosFromNodes([makeNode('a', 'z1'), makeNode('b', 'z2', { cpu: '0' })])).toBeNull();
    expect(zoneRatiosFromNodes([makeNode('a', 'z1'), makeNode('b', 'z1')])).toBeNull();
  });
});

describe('hint switches', () => {
  it('the deprecated annotation wins over topology-mode', () => {
    expect(topologyHintsEnabled({ 'service.kubernetes.io/topology-mode': 'Auto' })).toBe(true);
    expect(topologyHintsEnabled({ 'service.kubernetes.io/topology-mode': 'Auto', 'service.kubernetes.io/topology-aware-hints': 'disabled' })).toBe(false);
    expect(topologyHintsEnabled({ 'service.kubernetes.io/topology-mode': 'PreferZone' })).toBe(false);
  });

  it('accepts PreferSameZone/PreferSameNode only when enabled', () => {
    expect(validTrafficDistribution('PreferClose', false)).toBe(true);
    expect(validTrafficDistribution('PreferSameNode', false)).toBe(false);
    expect(validTrafficDistribution('PreferSameZone', true)).toBe(true);
    expect(validTrafficDistribution('Anywhere', true)).toBe(false);
  });
});

describe('isServiceOverloaded', () => {
  const ratios = new Map([['z1', 0.5], ['z2', 0.5]]);
  it('flags a zone below its minimum share', () => {
    expect(isServiceOverloaded({ z1: 5, z2: 5 }, ratios)).toBe(false);
    expect(isServiceOverloaded({ z1: 8, z2: 2 }, ratios)).toBe(true);
    expect(isServiceOverloaded({ z1: 8 }, ratios)).toBe(true);
    expect(isServiceOverloaded({}, ratios)).toBe(false);
  });
});
