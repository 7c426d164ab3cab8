// The ServiceClaim CRD must be served before the claims informer can sync (and an unsynced informer holds up
// every job of the manager), so the job installs it, or at least checks it, before registering anything.
import { serviceClaimCRD } from '../../crds/manifests.js';
import { sleep } from '../runtime/backoff.js';
import { isAlreadyExists, type KubeClient } from '../runtime/client.js';
import type { ResourceType } from '../runtime/resources.js';

const CustomResourceDefinitions: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
};

interface StoredCRD {
  metadata: { resourceVersion?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

const isEstablished = (crd: StoredCRD | undefined): boolean =>
  crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;

/** Creates (or, with `install`, upgrades) the ServiceClaim CRD and waits until it is served. */
export async function ensureServiceClaimCRD(client: KubeClient, install: boolean, timeoutMs = 30_000): Promise<void> {
  const name = serviceClaimCRD.metadata.name;
  if (install) {
    try {
      await client.create(CustomResourceDefinitions, serviceClaimCRD);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const stored = await client.get<StoredCRD>(CustomResourceDefinitions, name);
      await client.replace(CustomResourceDefinitions, { ...serviceClaimCRD, metadata: { ...serviceClaimCRD.metadata, resourceVersion: stored.metadata.resourceVersion } });
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (!isEstablished(await client.getOrUndefined<StoredCRD>(CustomResourceDefinitions, name))) {
    if (Date.now() > deadline) throw new Error(`CustomResourceDefinition ${name} is not established`);
    await sleep(100);
  }
}
