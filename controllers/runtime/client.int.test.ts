// Writes answered with the stored object's metadata only, against a real API server: the endpoint controllers need
// nothing else from a write's answer, and the whole object is ~25 KB for a slice of 100 endpoints. And updates that
// leave an object without managedFields, so that the API server skips field tracking for it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiError, KubeClient } from './client.js';
import { ConfigMaps } from '../../api/resources.js';
import type { KubeObject } from '../../api/wire.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, testClient } from '../../e2e/jest/cluster.js';

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

  it('leaves an object without managedFields after an untracked replace, with the fields of other managers kept', async () => {
    await client.createForMetadata(ConfigMaps, { metadata: { name: 'u', namespace: ns }, data: { v: '1' } } as ConfigMap);
    const other = KubeClient.fromFile(controlPlaneInfo().kubeconfig, 'someone-else');
    try {
      await other.patch(ConfigMaps, 'u', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'u', namespace: ns, labels: { team: 'a' } } }, 'apply', { namespace: ns });
    } finally {
      other.close();
    }
    const tracked = await client.get<ConfigMap>(ConfigMaps, 'u', ns);
    expect(tracked.metadata?.managedFields?.map((entry) => entry.manager).sort()).toEqual(['someone-else', 'switchboard-test']);

    for (const v of ['2', '3']) {
      const live = await client.get<ConfigMap>(ConfigMaps, 'u', ns);
      const replaced = await client.replaceUntracked(ConfigMaps, { ...live, data: { v } } as ConfigMap);
      expect(replaced).not.toHaveProperty('data');
      const stored = await client.get<ConfigMap>(ConfigMaps, 'u', ns);
      // Tracked, this update (which changed data) would have given switchboard-test an entry.
      expect(stored.metadata?.managedFields).toBeUndefined();
      expect(stored.data).toEqual({ v });
      expect(stored.metadata?.labels).toEqual({ team: 'a' });
      expect(stored.metadata?.resourceVersion).toBe(replaced.metadata?.resourceVersion);
    }
  });

  it('refuses a stale untracked replace with 409 Conflict, leaving the object as it was', async () => {
    const created = await client.createForMetadata(ConfigMaps, { metadata: { name: 'u-stale', namespace: ns }, data: { v: '1' } } as ConfigMap);
    await client.replaceUntracked(ConfigMaps, { metadata: { ...created.metadata }, data: { v: '2' } } as ConfigMap);
    const conflict = await client.replaceUntracked(ConfigMaps, { metadata: { ...created.metadata }, data: { v: '3' } } as ConfigMap).catch((err: unknown) => err);
    expect((conflict as ApiError).code).toBe(409);
    expect((await client.get<ConfigMap>(ConfigMaps, 'u-stale', ns)).data).toEqual({ v: '2' });
  });
});
