// Bad input never crashes the endpoint controllers or makes them loop: pods on unknown Nodes, hand-made and
// hand-edited slices carrying our managed-by label, Endpoints subsets over the mirroring cap, named ports a pod
// lacks. Each case ends with an Event or a log line saying what was skipped and why.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient } from '../runtime/client.js';
import { Informer } from '../runtime/informer.js';
import { EndpointSlices, Endpoints as EndpointsResource, Events, Nodes, Services } from '../../api/resources.js';
import type { EndpointSlice, KubeEvent } from '../../api/wire.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../endpointutil/constants.js';
import { type RunningControllers, createNode, createPod, runControllers } from '../../testing/endpoint-cluster.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, randomSuffix, testClient } from '../../e2e/jest/cluster.js';
import { parseEndpointsJobFlags, registerEndpointControllers, type EndpointControllers } from '../../cmd/jobs/endpoints.js';

const MANAGED_BY = 'endpointslice-controller.bad.switchboard.dev';
const MIRROR_MANAGED_BY = 'endpointslicemirroring-controller.bad.switchboard.dev';

describe('endpoint controllers on bad input', () => {
  let client: KubeClient;
  let ns: string;
  let switchboard: RunningControllers<EndpointControllers>;
  let slices: Informer<EndpointSlice>;
  const nodes: string[] = [];

  const ours = (service: string) =>
    slices.store.list().filter((s) => s.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] === service && s.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY);
  const events = async (name: string, reason: string) =>
    (await client.list<KubeEvent>(Events, { namespace: ns, fieldSelector: `involvedObject.name=${name},reason=${reason}` })).items;
  const logs = (text: string) => switchboard.logs.filter((l) => l.includes(text));

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'esbad');
    nodes.push(`esbad-${randomSuffix()}`);
    await createNode(client, nodes[0], { zone: 'z1' });
    slices = new Informer<EndpointSlice>(client, EndpointSlices, { namespace: ns });
    slices.start();
    await slices.waitForSync();
    const config = parseEndpointsJobFlags({
      'endpoint-controllers-namespace': ns,
      'endpointslice-managed-by': MANAGED_BY,
      'mirroring-managed-by': MIRROR_MANAGED_BY,
      'mirroring-max-endpoints-per-subset': '3',
    });
    switchboard = await runControllers(controlPlaneInfo().kubeconfig, (manager) => registerEndpointControllers(manager, config));
  });

  afterAll(async () => {
    await switchboard?.stop();
    await slices?.stop();
    await deleteNamespace(client, ns);
    for (const node of nodes) await client.delete(Nodes, node).catch(() => undefined);
    client.close();
  });

  it('leaves out a pod on an unknown Node with an Event, retries with backoff, and takes it in when the Node appears', async () => {
    const ghost = `esbad-ghost-${randomSuffix()}`;
    await client.create(Services, { metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    await createPod(client, ns, { name: 'known', labels: { app: 'web' }, node: nodes[0], ips: ['10.80.0.1'] });
    await createPod(client, ns, { name: 'lost', labels: { app: 'web' }, node: ghost, ips: ['10.80.0.2'] });
    await eventually(() => expect(ours('web').flatMap((s) => s.endpoints ?? []).map((e) => e.addresses[0])).toEqual(['10.80.0.1']));
    // Three failed syncs (at 0, 1 and 3 s): the next retry is 4 s away.
    const [event] = await eventually(async () => {
      const found = await events('web', 'FailedToUpdateEndpointSlices');
      return (found[0]?.count ?? 0) >= 3 && found;
    }, 20_000, 200);
    expect(event.type).toBe('Warning');
    expect(event.message).toContain(`skipping Pod lost for Service ${ns}/web: Node ${ghost} Not Found`);
    expect(event.source?.component).toBe('endpoint-slice-controller');
    nodes.push(ghost);
    await createNode(client, ghost, { zone: 'z2' });
    // Well before that retry: the Node's arrival re-syncs the Services waiting for it.
    await eventually(() => expect(ours('web').flatMap((s) => s.endpoints ?? []).map((e) => [e.addresses[0], e.zone]).sort()).toEqual([['10.80.0.1', 'z1'], ['10.80.0.2', 'z2']]), 2500, 100);
  });

  it('handles hand-made and hand-edited slices with our managed-by label, then stays quiet', async () => {
    await eventually(() => ours('web').length === 1);
    const stray = (labels: Record<string, string>) =>
      client.create<EndpointSlice>(EndpointSlices, { metadata: { generateName: 'stray-', namespace: ns, labels }, addressType: 'IPv4', endpoints: [{ addresses: ['10.80.9.9'] }], ports: [] });
    const orphan = await stray({ [LABEL_MANAGED_BY]: MANAGED_BY });
    const unowned = await stray({ [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'web' });
    const [mine] = ours('web');
    await client.patch(EndpointSlices, mine.metadata!.name!, { endpoints: [] }, 'merge', { namespace: ns });

    await eventually(() => {
      const names = slices.store.list().map((s) => s.metadata?.name);
      expect(names).not.toContain(unowned.metadata?.name); // not owned by the Service: removed
      expect(names).toContain(orphan.metadata?.name); // no Service named: left alone, and said so
      expect(ours('web').flatMap((s) => s.endpoints ?? [])).toHaveLength(2); // the edit is reverted
      expect(logs('no service-name label').length).toBeGreaterThan(0);
    }, 15_000, 100);

    // No loop: nothing is written in the next two seconds (a negative can only be shown by waiting).
    let writes = 0;
    slices.addEventHandler({ onUpdate: () => (writes += 1), onDelete: () => (writes += 1) });
    const versions = slices.store.list().map((s) => s.metadata?.resourceVersion);
    await new Promise((r) => setTimeout(r, 2000));
    expect(writes).toBe(0);
    expect(slices.store.list().map((s) => s.metadata?.resourceVersion)).toEqual(versions);
  });

  it('mirrors at most the per-subset cap, with a TooManyAddressesToMirror Event', async () => {
    await client.create(Services, { metadata: { name: 'manual', namespace: ns }, spec: { ports: [{ name: 'http', port: 80 }] } });
    await client.create(EndpointsResource, {
      metadata: { name: 'manual', namespace: ns },
      subsets: [{ addresses: [1, 2, 3, 4, 5].map((i) => ({ ip: `10.81.0.${i}` })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }],
    });
    await eventually(() => {
      const mirrored = slices.store.list().filter((s) => s.metadata?.labels?.[LABEL_MANAGED_BY] === MIRROR_MANAGED_BY);
      expect(mirrored.flatMap((s) => s.endpoints ?? [])).toHaveLength(3);
    });
    const [event] = await eventually(async () => {
      const found = await events('manual', 'TooManyAddressesToMirror');
      return found.length > 0 && found;
    });
    expect(event.message).toBe('A max of 3 addresses can be mirrored to EndpointSlices per Endpoints subset. 2 addresses were skipped');
    expect(event.involvedObject.kind).toBe('Endpoints');
  });

  it('removes the slices and Endpoints it wrote once the selector is removed; hand-made Endpoints are then mirrored', async () => {
    await client.create(Services, { metadata: { name: 'sel', namespace: ns }, spec: { selector: { app: 'sel' }, ports: [{ name: 'http', port: 80 }] } });
    await createPod(client, ns, { name: 'sel-0', labels: { app: 'sel' }, node: nodes[0], ips: ['10.83.0.1'] });
    await eventually(async () => ours('sel').length === 1 && (await client.getOrUndefined(EndpointsResource, 'sel', ns)) !== undefined);
    await client.patch(Services, 'sel', { spec: { selector: null } }, 'merge', { namespace: ns });
    const mirrored = () => slices.store.list().filter((s) => s.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] === 'sel' && s.metadata?.labels?.[LABEL_MANAGED_BY] === MIRROR_MANAGED_BY);
    await eventually(async () => ours('sel').length === 0 && (await client.getOrUndefined(EndpointsResource, 'sel', ns)) === undefined && mirrored().length === 0);
    await client.create(EndpointsResource, { metadata: { name: 'sel', namespace: ns }, subsets: [{ addresses: [{ ip: '10.83.1.1' }], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }] });
    await eventually(() => expect(mirrored().flatMap((s) => s.endpoints ?? []).map((e) => e.addresses[0])).toEqual(['10.83.1.1']));
    expect(await client.getOrUndefined(EndpointsResource, 'sel', ns)).toBeDefined(); // not ours: left alone
  });

  it('logs a named port a pod lacks once, not on every sync', async () => {
    await client.create(Services, { metadata: { name: 'named', namespace: ns }, spec: { selector: { app: 'named' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] } });
    await createPod(client, ns, { name: 'portless', labels: { app: 'named' }, node: nodes[0], ips: ['10.82.0.1'] });
    await eventually(() => ours('named').flatMap((s) => s.endpoints ?? []).length === 1);
    for (const tier of ['a', 'b', 'c']) {
      await client.patch(Services, 'named', { metadata: { labels: { tier } } }, 'merge', { namespace: ns });
      await eventually(() => ours('named').every((s) => s.metadata?.labels?.tier === tier));
    }
    // Once by each controller that publishes the pod: the EndpointSlice and the Endpoints controller.
    const lines = logs('PodPortNotFound').filter((l) => l.includes('portless'));
    expect(lines.map((l) => (JSON.parse(l) as { logger: string }).logger).sort()).toEqual(['switchboard.endpoints', 'switchboard.endpointslice']);
    expect(lines[0]).toContain('no container port matches targetPort http');
  });
});
