// What integration tests share: a client for the run's control plane, a fresh namespace per test,
// and a polling helper for conditions that settle asynchronously.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { KubeClient, isNotFound } from '../../controllers/runtime/client.js';
import { Namespaces } from '../../api/resources.js';
import type { ControlPlaneInfo } from '../../cmd/up/controlplane/controlplane.js';

export function controlPlaneInfo(): ControlPlaneInfo {
  const raw = process.env.SWITCHBOARD_TEST_CONTROLPLANE;
  if (!raw) throw new Error('no control plane: run integration tests through jest (`npm test`), whose global setup starts one');
  return JSON.parse(raw) as ControlPlaneInfo;
}

export function testClient(kubeconfig = controlPlaneInfo().kubeconfig): KubeClient {
  return KubeClient.fromFile(kubeconfig, 'switchboard-test');
}

export function randomSuffix(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

export async function createNamespace(client: KubeClient, prefix = 'test'): Promise<string> {
  const name = `${prefix}-${randomSuffix()}`;
  await client.create(Namespaces, { metadata: { name, labels: { 'switchboard.dev/test': 'true' } } });
  return name;
}

export async function deleteNamespace(client: KubeClient, name: string): Promise<void> {
  try {
    await client.delete(Namespaces, name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** Polls `check` until it returns without throwing and is not false; rethrows the last failure at the deadline. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 30_000, intervalMs = 100): Promise<Exclude<T, false>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = new Error('condition never became true');
  for (;;) {
    try {
      const result = await check();
      if (result !== false) return result as Exclude<T, false>;
      last = new Error('condition still false');
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Writes to `path` a kubeconfig that acts as ServiceAccount `namespace/name` (a TokenRequest token, an hour long) on
 * the server of `adminKubeconfig`, trusting its CA; returns `path`.
 */
export async function serviceAccountKubeconfig(admin: KubeClient, adminKubeconfig: string, namespace: string, name: string, path: string): Promise<string> {
  const review = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 3600 },
  });
  const cluster = (JSON.parse(await readFile(adminKubeconfig, 'utf8')) as { clusters: { cluster: Record<string, string> }[] }).clusters[0].cluster;
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: cluster.server, 'certificate-authority-data': cluster['certificate-authority-data'] } }],
    users: [{ name: 'sa', user: { token: review.status.token } }],
    contexts: [{ name: 'sa', context: { cluster: 'local', user: 'sa' } }],
    'current-context': 'sa',
  };
  await writeFile(path, JSON.stringify(config), { mode: 0o600 }); // JSON is YAML
  return path;
}
