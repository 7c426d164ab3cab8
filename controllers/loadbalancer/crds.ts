// The LoadBalancer CRDs (IPAddressPool, L2Advertisement, ServiceL2Status). The controller installs them at start
// when allowed, so `switchboard up` works on a bare cluster; tests use ensureCRDs to prepare their control plane.
import type { KubeClient } from '../runtime/client.js';
import { installCRDs, unservedCRDs, waitForCRDs } from '../runtime/crds.js';
import { ipAddressPoolCRD, l2AdvertisementCRD, serviceL2StatusCRD, type CustomResourceDefinition } from '../../crds/manifests.js';

/** The CRDs of the LoadBalancer feature (crds/ also holds other features' CRDs). */
export const LB_CRDS: readonly CustomResourceDefinition[] = [ipAddressPoolCRD, l2AdvertisementCRD, serviceL2StatusCRD];
const LB_CRD_NAMES = LB_CRDS.map((crd) => crd.metadata.name);

/** Whether every CRD is served; missing ones are listed. */
export function missingCRDs(client: KubeClient): Promise<string[]> {
  return unservedCRDs(client, LB_CRD_NAMES);
}

/** Creates or updates the CRDs and waits (up to `timeoutMs`) until all are established. */
export async function ensureCRDs(client: KubeClient, timeoutMs = 30_000): Promise<void> {
  await installCRDs(client, LB_CRDS);
  await waitForCRDs(client, LB_CRD_NAMES, timeoutMs);
}
