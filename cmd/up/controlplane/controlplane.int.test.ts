// The local control plane is the real thing: kubectl talks to it, and kube-controller-manager runs
// the namespace and garbage-collector controllers but not the endpoint controllers Switchboard replaces.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isNotFound, type KubeClient } from '../../../controllers/runtime/client.js';
import { ConfigMaps, EndpointSlices, Endpoints, Namespaces, Pods, Services } from '../../../api/resources.js';
import { KUBERNETES_VERSION } from './binaries.js';
import type { KubeObject } from '../../../api/wire.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, testClient } from '../../../e2e/jest/cluster.js';

const run = promisify(execFile);

describe('local control plane', () => {
  let client: KubeClient;
  let ns: string;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'cp');
  });

  afterAll(async () => {
    await deleteNamespace(client, ns);
    client.close();
  });

  it('serves the pinned Kubernetes version to the pinned kubectl', async () => {
    const info = controlPlaneInfo();
    const { stdout } = await run(info.kubectl, [`--kubeconfig=${info.kubeconfig}`, 'version', '-o', 'json']);
    const version = JSON.parse(stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    expect(version.serverVersion.gitVersion).toBe(KUBERNETES_VERSION);
    expect(version.clientVersion.gitVersion).toBe(KUBERNETES_VERSION);
  });

  it('allocates the kubernetes Service from the configured service CIDR', async () => {
    const svc = await client.get<{ spec: { clusterIP: string } }>(Services, 'kubernetes', 'default');
    expect(svc.spec.clusterIP).toBe('10.96.0.1');
  });

  it('runs the garbage collector: dependents of a deleted owner go away', async () => {
    const owner = await client.create<KubeObject>(ConfigMaps, { metadata: { name: 'owner', namespace: ns } });
    await client.create(ConfigMaps, {
      metadata: {
        name: 'dependent',
        namespace: ns,
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' }],
      },
    });
    await client.delete(ConfigMaps, 'owner', { namespace: ns });
    await eventually(async () => {
      try {
        await client.get(ConfigMaps, 'dependent', ns);
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    }, 60_000, 250);
  });

  it('runs the namespace controller: a deleted namespace is emptied and removed', async () => {
    const doomed = await createNamespace(client, 'doomed');
    await client.create(ConfigMaps, { metadata: { name: 'x', namespace: doomed } });
    await client.delete(Namespaces, doomed);
    await eventually(async () => {
      try {
        await client.get(Namespaces, doomed);
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    }, 60_000, 250);
  });

  it('does not run the endpoint controllers Switchboard replaces', async () => {
    await client.create(Services, { metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    await client.create(Pods, { metadata: { name: 'web-1', namespace: ns, labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } });
    // kube-controller-manager's controllers would write both within a second of the Service's creation.
    await new Promise((r) => setTimeout(r, 3000));
    const slices = await client.list(EndpointSlices, { namespace: ns });
    expect(slices.items).toHaveLength(0);
    const endpoints = await client.getOrUndefined(Endpoints, 'web', ns);
    expect(endpoints).toBeUndefined();
  });
});
