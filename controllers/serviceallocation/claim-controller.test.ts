import { describe, expect, it } from '@jest/globals';
import type { Service } from '../../api/wire.js';
import { StoredServiceUIDs } from './claim-controller.js';

const service = (uid: string): Service => ({ metadata: { namespace: 'default', name: `svc-${uid}`, uid } });

describe('StoredServiceUIDs', () => {
  it('knows a live Service, and a deleted one for the window after its deletion', () => {
    const uids = new StoredServiceUIDs(40_000);
    uids.stored(service('a'));
    uids.stored(service('b'));
    expect([uids.has('a'), uids.has('b'), uids.has('never'), uids.has('')]).toEqual([true, true, false, false]);
    uids.removed(service('a'), 1_000);
    uids.removed(service('b'), 30_000);
    expect([uids.has('a'), uids.has('b')]).toEqual([true, true]);
    // A later deletion prunes those past the window.
    uids.removed(service('c'), 45_000);
    expect([uids.has('a'), uids.has('b'), uids.has('c')]).toEqual([false, true, true]);
  });
});
