import { describe, expect, it } from '@jest/globals';
import { Store, byLabel, byNamespace } from './store.js';
import type { KubeObject } from '../../api/wire.js';

const obj = (namespace: string, name: string, labels: Record<string, string> = {}): KubeObject => ({ metadata: { namespace, name, labels } });

describe('Store', () => {
  it('indexes objects already cached when an index is added later, and keeps it up to date', () => {
    const store = new Store<KubeObject>({ ns: byNamespace });
    store.upsert(obj('a', 'x', { app: 'web' }));
    store.upsert(obj('b', 'y', { app: 'web' }));
    store.addIndexer('app', byLabel('app'));
    expect(store.byIndex('app', 'a/web').map((o) => o.metadata?.name)).toEqual(['x']);
    store.upsert(obj('a', 'z', { app: 'web' }));
    store.remove('a/x');
    expect(store.byIndex('app', 'a/web').map((o) => o.metadata?.name)).toEqual(['z']);
    expect(store.byIndex('ns', 'b').map((o) => o.metadata?.name)).toEqual(['y']);
  });

  it('keeps the first definition of an index name', () => {
    const store = new Store<KubeObject>({ ns: byNamespace });
    store.upsert(obj('a', 'x'));
    store.addIndexer('ns', () => ['other']);
    expect(store.byIndex('ns', 'a')).toHaveLength(1);
    expect(store.byIndex('ns', 'other')).toHaveLength(0);
  });
});
