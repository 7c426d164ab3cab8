import { describe, expect, it } from '@jest/globals';
import type { EndpointSlice } from '../../api/wire.js';
import { makeService } from '../../testing/endpoint-objects.js';
import { DELETION_EXPECTED, EndpointSliceTracker, isSliceCacheStale } from './tracker.js';

function slice(uid: string, generation: number, service = 'web'): EndpointSlice {
  return { metadata: { name: uid, uid, generation, namespace: 'default', labels: { 'kubernetes.io/service-name': service } }, addressType: 'IPv4', endpoints: [] };
}

describe('isSliceCacheStale', () => {
  it('is stale when the cache is behind our writes', () => {
    expect(isSliceCacheStale(new Map([['a', 2]]), [slice('a', 1)])).toBe(true); // older generation cached
    expect(isSliceCacheStale(new Map([['a', DELETION_EXPECTED]]), [slice('a', 1)])).toBe(true); // deleted, still cached
    expect(isSliceCacheStale(new Map([['a', 1]]), [])).toBe(true); // created, not cached yet
  });

  it('is fresh when the cache has caught up (or is ahead)', () => {
    expect(isSliceCacheStale(new Map([['a', 2], ['b', DELETION_EXPECTED]]), [slice('a', 3)])).toBe(false);
    expect(isSliceCacheStale(new Map(), [slice('x', 1)])).toBe(false);
  });
});

describe('EndpointSliceTracker', () => {
  it('filters echoes of our own writes', () => {
    const tracker = new EndpointSliceTracker();
    expect(tracker.shouldSync(slice('a', 1))).toBe(true);
    tracker.update(slice('a', 1));
    expect(tracker.has(slice('a', 1))).toBe(true);
    expect(tracker.shouldSync(slice('a', 1))).toBe(false);
    expect(tracker.shouldSync(slice('a', 2))).toBe(true); // someone else wrote it
  });

  it('detects a lagging cache and forgets writes for a recreated Service', () => {
    const tracker = new EndpointSliceTracker();
    const service = makeService({ uid: 'one' });
    tracker.update(slice('a', 2));
    expect(tracker.staleSlices(service, [slice('a', 1)])).toBe(true);
    expect(tracker.staleSlices(service, [slice('a', 2)])).toBe(false);
    expect(tracker.staleSlices(makeService({ uid: 'two' }), [])).toBe(false);
  });

  it('tells expected deletions from unexpected ones', () => {
    const tracker = new EndpointSliceTracker();
    tracker.update(slice('a', 1));
    tracker.update(slice('b', 1));
    tracker.expectDeletion(slice('a', 1));
    expect(tracker.staleSlices(makeService(), [slice('a', 1), slice('b', 1)])).toBe(true);
    expect(tracker.handleDeletion(slice('a', 1))).toBe(true);
    expect(tracker.handleDeletion(slice('b', 1))).toBe(false);
    tracker.deleteOwner('default', 'web');
    expect(tracker.shouldSync(slice('b', 1))).toBe(true);
  });
});
