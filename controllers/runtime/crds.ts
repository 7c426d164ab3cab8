// Installing Switchboard's own CRDs and waiting until the API server serves them: a job's informers cannot
// sync (and so hold up every job of the manager) before their CRD is Established.
import { sleep } from './backoff.js';
import { isAlreadyExists, type KubeClient } from './client.js';
import type { ResourceType } from '../../api/resources.js';

export const CustomResourceDefinitions: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
};

/** A CRD manifest as this module needs it: anything with a name. */
export interface NamedCRD {
  metadata: { name: string };
}

interface StoredCRD {
  metadata: { resourceVersion?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

const isEstablished = (crd: StoredCRD | undefined): boolean =>
  crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;

/** Creates each CRD, or replaces it (an unchanged one is a no-op on the server; an older release's is upgraded). */
export async function installCRDs(client: KubeClient, crds: readonly NamedCRD[]): Promise<void> {
  for (const crd of crds) {
    try {
      await client.create(CustomResourceDefinitions, crd);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const stored = await client.get<StoredCRD>(CustomResourceDefinitions, crd.metadata.name);
      await client.replace(CustomResourceDefinitions, { ...crd, metadata: { ...crd.metadata, resourceVersion: stored.metadata.resourceVersion } });
    }
  }
}

/** The names among `names` whose CRD is missing or not yet Established. */
export async function unservedCRDs(client: KubeClient, names: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const name of names) {
    if (!isEstablished(await client.getOrUndefined<StoredCRD>(CustomResourceDefinitions, name))) missing.push(name);
  }
  return missing;
}

/** Waits until every named CRD is Established; throws after `timeoutMs` naming those that are not. */
export async function waitForCRDs(client: KubeClient, names: readonly string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing = await unservedCRDs(client, names);
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`CRDs not established after ${timeoutMs} ms: ${missing.join(', ')}`);
    await sleep(100);
  }
}
