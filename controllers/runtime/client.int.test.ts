// Writes answered with the stored object's metadata only, against a real API server: the endpoint controllers need
// nothing else from a write's answer, and the whole object is ~25 KB for a slice of 100 endpoints.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiError, type KubeClient } from './client.js';
import { ConfigMaps } from '../../api/resources.js';
import type { KubeObject } from '../../api/wire.js';
import { createNamespace, deleteNamespace, testClient } from '../../e2e/jest/cluster.js';

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

describe('KubeClient writes answered with metadata', () => {
  let client: KubeClient;
  let ns = '';

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'client');
  });
  afterAll(async () => {
    await deleteNamespace(client, ns);
    client.close();
  });

  it('answers a create and a replace with the stored metadata and none of the object', async () => {
    const created = await client.createForMetadata(ConfigMaps, { metadata: { name: 'm', namespace: ns, labels: { a: 'b' } }, data: { big: 'x'.repeat(10_000) } } as ConfigMap);
    expect(created).toMatchObject({ kind: 'PartialObjectMetadata', metadata: { name: 'm', namespace: ns, labels: { a: 'b' } } });
    expect(created).not.toHaveProperty('data');
    expect(created.metadata?.uid).toBeTruthy();

    const stored = await client.get<ConfigMap>(ConfigMaps, 'm', ns);
    expect(stored.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    const replaced = await client.replaceForMetadata(ConfigMaps, { ...stored, data: { big: 'y' } } as ConfigMap);
    expect(replaced).not.toHaveProperty('data');
    expect(replaced.metadata?.resourceVersion).not.toBe(created.metadata?.resourceVersion);
    expect((await client.get<ConfigMap>(ConfigMaps, 'm', ns)).metadata?.resourceVersion).toBe(replaced.metadata?.resourceVersion);
  });

  it('still fails with the API server Status: a stale replace is a 409 Conflict', async () => {
    const created = await client.createForMetadata(ConfigMaps, { metadata: { name: 'stale', namespace: ns }, data: { v: '1' } } as ConfigMap);
    await client.replaceForMetadata(ConfigMaps, { metadata: { ...created.metadata }, data: { v: '2' } } as ConfigMap);
    const conflict = await client.replaceForMetadata(ConfigMaps, { metadata: { ...created.metadata }, data: { v: '3' } } as ConfigMap).catch((err: unknown) => err);
    expect(conflict).toBeInstanceOf(ApiError);
    expect((conflict as ApiError).code).toBe(409);
    expect((conflict as ApiError).status.reason).toBe('Conflict');
  });
});
