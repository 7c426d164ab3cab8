// Installs or upgrades the LoadBalancer CRDs (IPAddressPool, L2Advertisement, ServiceL2Status) and waits until
// the API server serves them. The controller does this at start when allowed, so `switchboard up` works on a bare
// cluster; tests use it to prepare their control plane.
import { isAlreadyExists, isNotFound, type KubeClient } from '../runtime/client.js';
import type { ResourceType } from '../runtime/resources.js';
import { sleep } from '../runtime/backoff.js';
import { ipAddressPoolCRD, l2AdvertisementCRD, serviceL2StatusCRD, type CustomResourceDefinition } from '../../crds/manifests.js';

/** The CRDs of the LoadBalancer feature (crds/ also holds other features' CRDs). */
export const LB_CRDS: readonly CustomResourceDefinition[] = [ipAddressPoolCRD, l2AdvertisementCRD, serviceL2StatusCRD];

export const CustomResourceDefinitions: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
};

interface ServedCRD extends CustomResourceDefinition {
  metadata: CustomResourceDefinition['metadata'] & { resourceVersion?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

const established = (crd: ServedCRD): boolean => crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;

/** Whether every CRD is served; missing ones are listed. */
export async function missingCRDs(client: KubeClient): Promise<string[]> {
  const missing: string[] = [];
  for (const crd of LB_CRDS) {
    const got = await client.getOrUndefined<ServedCRD>(CustomResourceDefinitions, crd.metadata.name);
    if (!got || !established(got)) missing.push(crd.metadata.name);
  }
  return missing;
}

/** Creates or updates the CRDs and waits (up to `timeoutMs`) until all are established. */
export async function ensureCRDs(client: KubeClient, timeoutMs = 30_000): Promise<void> {
  for (const crd of LB_CRDS) {
    try {
      await client.create(CustomResourceDefinitions, crd);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      // An update with unchanged content is a no-op on the server; one from an older release is an upgrade.
      const current = await client.get<ServedCRD>(CustomResourceDefinitions, crd.metadata.name);
      await client.replace(CustomResourceDefinitions, { ...crd, metadata: { ...crd.metadata, resourceVersion: current.metadata.resourceVersion } });
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing = await missingCRDs(client).catch((err: unknown) => (isNotFound(err) ? ['?'] : Promise.reject(err)));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`CRDs not established after ${timeoutMs} ms: ${missing.join(', ')}`);
    await sleep(100);
  }
}
