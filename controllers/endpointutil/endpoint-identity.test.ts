import { describe, expect, it } from '@jest/globals';
import { endpointKey } from './endpoint-identity.js';
import type { SliceEndpoint } from './types.js';

const endpoint = (addresses: string[], name: string, extra: Partial<SliceEndpoint> = {}): SliceEndpoint => ({
  addresses,
  targetRef: { kind: 'Pod', namespace: 'ns', name, uid: `uid-${name}` },
  ...extra,
});

describe('endpointKey', () => {
  it('is the same for the same addresses (in any order), hostname and target, whatever the uid and conditions', () => {
    expect(endpointKey(endpoint(['10.0.0.1'], 'a'))).toBe(endpointKey(endpoint(['10.0.0.1'], 'a', { targetRef: { kind: 'Pod', namespace: 'ns', name: 'a', uid: 'other' }, conditions: { ready: false } })));
    expect(endpointKey(endpoint(['10.0.0.1', '10.0.0.2'], 'a'))).toBe(endpointKey(endpoint(['10.0.0.2', '10.0.0.1'], 'a')));
  });

  it('differs when an address, the hostname, the namespace or the name differs', () => {
    const base = endpointKey(endpoint(['10.0.0.1'], 'a'));
    expect(endpointKey(endpoint(['10.0.0.2'], 'a'))).not.toBe(base);
    expect(endpointKey(endpoint(['10.0.0.1'], 'b'))).not.toBe(base);
    expect(endpointKey(endpoint(['10.0.0.1'], 'a', { hostname: 'h' }))).not.toBe(base);
    expect(endpointKey(endpoint(['10.0.0.1'], 'a', { targetRef: { kind: 'Pod', namespace: 'other', name: 'a' } }))).not.toBe(base);
    expect(endpointKey(endpoint(['10.0.0.1', '10.0.0.3'], 'a'))).not.toBe(base);
  });

  it('keeps fields that hold a newline apart (they take the JSON form)', () => {
    const a = endpointKey(endpoint(['10.0.0.1'], 'x\ny'));
    const b = endpointKey(endpoint(['10.0.0.1'], 'x', { hostname: undefined, targetRef: { kind: 'Pod', namespace: 'ns', name: 'x' } }));
    expect(a).not.toBe(b);
    expect(endpointKey(endpoint(['10.0.0.1\nns'], 'a'))).not.toBe(endpointKey(endpoint(['10.0.0.1'], 'a', { hostname: 'ns' })));
  });
});
