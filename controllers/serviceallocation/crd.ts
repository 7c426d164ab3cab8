// The ServiceClaim CRD must be served before the claims informer can sync, so the job installs it (or, without
// `install`, only waits for it) before registering anything.
import { serviceClaimCRD } from '../../crds/manifests.js';
import type { KubeClient } from '../runtime/client.js';
import { installCRDs, waitForCRDs } from '../runtime/crds.js';

/** Creates (or, with `install`, upgrades) the ServiceClaim CRD and waits until it is served. */
export async function ensureServiceClaimCRD(client: KubeClient, install: boolean, timeoutMs = 30_000): Promise<void> {
  if (install) await installCRDs(client, [serviceClaimCRD]);
  await waitForCRDs(client, [serviceClaimCRD.metadata.name], timeoutMs);
}
