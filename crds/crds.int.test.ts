// The CRDs on a real API server: they install, a MetalLB manifest applies with only its apiVersion changed,
// defaults and validation happen server-side, printer columns and the status subresource work.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApiError, isAlreadyExists, isNotFound, type KubeClient } from '../controllers/runtime/client.js';
import type { ResourceType } from '../api/resources.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, randomSuffix, testClient } from '../e2e/jest/cluster.js';
import { IPAddressPools, type IPAddressPool } from './ipaddresspool.js';
import { L2Advertisements } from './l2advertisement.js';
import { crdManifests } from './manifests.js';
import { asSwitchboard, metallbL2AdvertisementManifest, metallbPoolManifest } from '../testing/metallb-samples.js';
import { ServiceL2Statuses, type ServiceL2Status } from './servicel2status.js';

const run = promisify(execFile);
const CRDs: ResourceType = { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false };

interface CrdStatus {
  status?: { conditions?: { type: string; status: string }[] };
}

describe('switchboard.dev CRDs on the API server', () => {
  let client: KubeClient;
  let ns: string;
  let work: string;
  const suffix = randomSuffix();
  const created: [ResourceType, string, string?][] = [];
  const kubectl = async (...args: string[]): Promise<string> => {
    const info = controlPlaneInfo();
    return (await run(info.kubectl, [`--kubeconfig=${info.kubeconfig}`, ...args])).stdout;
  };

  beforeAll(async () => {
    client = testClient();
    work = mkdtempSync(join(tmpdir(), 'sb-crds-'));
    for (const crd of Object.values(crdManifests)) {
      try {
        await client.create(CRDs, crd);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
      await eventually(async () => {
        const got = await client.get<CrdStatus>(CRDs, crd.metadata.name);
        return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
      });
    }
    ns = await createNamespace(client, 'crds');
  });

  afterAll(async () => {
    for (const [rt, name, namespace] of created) {
      await client.delete(rt, name, { namespace }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    await deleteNamespace(client, ns);
    client.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('applies MetalLB manifests with only the apiVersion changed (namespace and all), with defaults and columns', async () => {
    const pool = `production-${suffix}`;
    const adv = `example-${suffix}`;
    const file = join(work, 'metallb.yaml');
    writeFileSync(file, asSwitchboard(`${metallbPoolManifest(pool)}---\n${metallbL2AdvertisementManifest(adv, pool)}`));
    created.push([IPAddressPools, pool], [L2Advertisements, adv]);
    await kubectl('apply', '-f', file);
    const got = await client.get<IPAddressPool>(IPAddressPools, pool);
    expect(got.spec).toEqual({
      addresses: ['192.168.10.0/24', '192.168.9.1-192.168.9.5', 'fc00:f853:0ccd:e799::/124'],
      autoAssign: false,
      avoidBuggyIPs: true,
      allowNetworkAndBroadcast: false,
      disabled: false,
      serviceAllocation: {
        priority: 50,
        namespaces: ['namespace-a', 'namespace-b'],
        namespaceSelectors: [{ matchLabels: { foo: 'bar' } }],
        serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['bar'] }] }],
      },
    });
    const table = await kubectl('get', 'ipaddresspools', pool);
    expect(table.split('\n')[0].split(/\s{2,}/)).toEqual(['NAME', 'AUTO ASSIGN', 'AVOID BUGGY IPS', 'ADDRESSES', 'DISABLED', 'ASSIGNED IPV4', 'AVAILABLE IPV4', 'IN CONFLICT', 'AGE']);
    expect(await kubectl('get', 'lbpool', pool, '-o', 'name')).toBe(`ipaddresspool.switchboard.dev/${pool}\n`);
    expect(await kubectl('get', 'l2adv', adv, '-o', 'jsonpath={.spec.interfaces}')).toBe('["eth3"]');
  });

  it('rejects what the schema forbids with field errors', async () => {
    const bad = (spec: unknown) => client.create(IPAddressPools, { metadata: { name: `bad-${suffix}` }, spec } as IPAddressPool);
    await expect(bad({ addresses: [] })).rejects.toThrow(/spec.addresses/);
    const err = await bad({ addresses: ['10.0.0.0/24'], serviceAllocation: { priority: -1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe(422);
    expect((err as ApiError).message).toContain('spec.serviceAllocation.priority');
  });

  it('writes status through the status subresource only', async () => {
    const name = `status-${suffix}`;
    created.push([IPAddressPools, name]);
    await client.create(IPAddressPools, { metadata: { name }, spec: { addresses: ['10.77.0.0/30'] } } as IPAddressPool);
    const status = {
      assignedIPv4: 1,
      availableIPv4: 1,
      assignedIPv6: 0,
      availableIPv6: 0,
      conditions: [{ type: 'Valid', status: 'True', reason: 'Valid', message: 'the pool is in use', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    };
    await client.patch(IPAddressPools, name, { status }, 'merge', { subresource: 'status' });
    await client.patch(IPAddressPools, name, { status: { assignedIPv4: 99 } }, 'merge');
    const got = await client.get<IPAddressPool>(IPAddressPools, name);
    expect(got.status).toEqual(status);
  });

  it('stores a namespaced ServiceL2Status with its columns', async () => {
    const name = `web-${suffix}`;
    await client.create(ServiceL2Statuses, { metadata: { name, namespace: ns } } as ServiceL2Status);
    await client.patch(
      ServiceL2Statuses,
      name,
      {
        status: {
          node: 'worker-1',
          serviceName: name,
          serviceNamespace: ns,
          addresses: ['192.168.10.1'],
          interfaces: [{ name: 'eth0' }],
          conditions: [{ type: 'Announced', status: 'True', reason: 'Elected', message: 'announcing', lastTransitionTime: '2026-01-01T00:00:00Z' }],
        },
      },
      'merge',
      { namespace: ns, subresource: 'status' },
    );
    const table = await kubectl('get', 'l2status', '-n', ns, name, '--no-headers');
    expect(table.split(/\s+/).slice(0, 5)).toEqual([name, 'worker-1', name, ns, 'True']);
  });
});
