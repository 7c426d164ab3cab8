// Issue 13: a sync that starts before the watch has delivered the echo of the controller's own last write must wait
// for it, not fail with "informer cache is out of date" and back off. The test makes that window wide and certain:
// the controllers' watch events for EndpointSlices and Endpoints reach their informers 600 ms late, and a second
// pod change arrives while the echo of the first write is held back.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient, WatchEvent } from '../runtime/client.js';
import { Informer } from '../runtime/informer.js';
import { EndpointSlices, Endpoints as EndpointsResource, Nodes, Services } from '../../api/resources.js';
import type { EndpointSlice, Endpoints } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME } from '../endpointutil/constants.js';
import { type RunningControllers, createNode, createPod, runControllers, setPodStatus } from '../../testing/endpoint-cluster.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, randomSuffix, testClient } from '../../e2e/jest/cluster.js';
import { parseEndpointsJobFlags, registerEndpointControllers, type EndpointControllers } from '../../cmd/jobs/endpoints.js';

const ECHO_DELAY_MS = 600;

describe('a cache behind our own writes', () => {
  let client: KubeClient;
  let ns: string;
  let node: string;
  let switchboard: RunningControllers<EndpointControllers>;
  let slices: Informer<EndpointSlice>;
  let endpoints: Informer<Endpoints>;

  const readyIPs = () => ({
    slices: slices.store
      .list()
      .filter((s) => s.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] === 'web')
      .flatMap((s) => s.endpoints ?? [])
      .filter((e) => e.conditions?.ready)
      .map((e) => e.addresses[0])
      .sort(),
    endpoints: (endpoints.store.get(`${ns}/web`)?.subsets ?? []).flatMap((s) => s.addresses ?? []).map((a) => a.ip).sort(),
  });

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'stale');
    node = `stale-${randomSuffix()}`;
    await createNode(client, node, { zone: 'z1' });
    slices = new Informer<EndpointSlice>(client, EndpointSlices, { namespace: ns });
    endpoints = new Informer<Endpoints>(client, EndpointsResource, { namespace: ns });
    slices.start();
    endpoints.start();
    await Promise.all([slices.waitForSync(), endpoints.waitForSync()]);
    const config = parseEndpointsJobFlags({ 'endpoint-controllers-namespace': ns, 'endpointslice-mirroring-controller': 'false' });
    switchboard = await runControllers(controlPlaneInfo().kubeconfig, (manager) => {
      // Hold back every EndpointSlice and Endpoints watch event the controllers' informers get (order is kept).
      const watch = manager.client.watch.bind(manager.client);
      manager.client.watch = <T>(rt: Parameters<KubeClient['watch']>[0], opts: Parameters<KubeClient['watch']>[1], onEvent: (event: WatchEvent<T>) => void) =>
        watch<T>(rt, opts, rt === EndpointSlices || rt === EndpointsResource ? (event) => setTimeout(() => onEvent(event), ECHO_DELAY_MS) : onEvent);
      return registerEndpointControllers(manager, config);
    });
  });

  afterAll(async () => {
    await switchboard?.stop();
    await Promise.all([slices?.stop(), endpoints?.stop()]);
    await deleteNamespace(client, ns);
    await client.delete(Nodes, node).catch(() => undefined);
    client.close();
  });

  it('waits for the echo instead of failing the sync', async () => {
    await client.create(Services, { metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    const ips = ['10.81.0.1', '10.81.0.2', '10.81.0.3'];
    for (const [i, ip] of ips.entries()) await createPod(client, ns, { name: `p${i}`, labels: { app: 'web' }, node, ips: [ip] });
    await eventually(() => expect(readyIPs()).toEqual({ slices: ips, endpoints: ips }), 30_000);
    const failuresBefore = switchboard.logs.filter((l) => l.includes('reconcile failed')).length;

    // The first change is written; the second arrives while that write's echo is still held back.
    await setPodStatus(client, ns, 'p0', { ips: [ips[0]], ready: false });
    await new Promise((r) => setTimeout(r, ECHO_DELAY_MS / 3));
    await setPodStatus(client, ns, 'p1', { ips: [ips[1]], ready: false });
    await eventually(() => expect(readyIPs()).toEqual({ slices: [ips[2]], endpoints: [ips[2]] }), 30_000);
    expect(switchboard.logs.slice(failuresBefore).filter((l) => l.includes('reconcile failed'))).toEqual([]);
  });
});
