// The LoadBalancer allocation controller against a real, dual-stack API server of this suite's own (its Services get
// addresses; the shared control plane's Services of other suites must not): allocation and what the Service shows,
// requested addresses under both annotation prefixes, sharing, dual-stack, pool shrink and delete, release, sticky
// addresses across controller restarts with pending Services, the validating webhook and its status fallback.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiError, KubeClient, isNotFound } from '../runtime/client.js';
import { createLogger } from '../runtime/log.js';
import { Manager } from '../runtime/manager.js';
import { Events, Namespaces, Services, type ResourceType } from '../../api/resources.js';
import type { KubeEvent, Service } from '../../api/wire.js';
import { LocalControlPlane, WEBHOOK_CLIENT_NAME } from '../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { eventually, randomSuffix } from '../../e2e/jest/cluster.js';
import { IPAddressPools, type IPAddressPool, type IPAddressPoolSpec } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';
import { SERVICE_CONDITION_TYPE } from '../../allocators/loadbalancer/allocator.js';
import { ANNOTATION_ALLOCATED_FROM_POOL } from '../../allocators/loadbalancer/service-request.js';
import { loadBalancerJob } from '../../cmd/jobs/loadbalancer.js';
import { ensureCRDs } from './crds.js';
import { WEBHOOK_CONFIGURATION } from './webhook.js';

const SYSTEM_NS = 'switchboard-system';
const WebhookConfigurations: ResourceType = { group: 'admissionregistration.k8s.io', version: 'v1', plural: 'validatingwebhookconfigurations', kind: 'ValidatingWebhookConfiguration', namespaced: false };

type Spec = NonNullable<Service['spec']>;

describe('LoadBalancer allocation on a real API server', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  let webhookPort = 0;
  let stopController: (() => Promise<void>) | undefined;
  let metricsPort = 0;

  /** Runs the job in-process; without `poolWebhook` it neither serves nor registers the pool validation. */
  async function startController(poolWebhook = true): Promise<void> {
    const manager = new Manager({
      client: KubeClient.fromFile(cp.kubeconfig),
      log: createLogger('lb-test', { level: 'warn' }),
      component: 'switchboard-controller',
      metricsAddress: '127.0.0.1:0',
      leaderElection: { enabled: false, namespace: SYSTEM_NS, leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
    });
    const flags = Object.fromEntries(Object.entries(loadBalancerJob.flags).map(([k, f]) => [k, f.default]));
    if (poolWebhook) {
      flags['pool-webhook-bind-address'] = `127.0.0.1:${webhookPort}`;
      flags['pool-webhook-url'] = `https://127.0.0.1:${webhookPort}`;
      flags['pool-webhook-client-ca-file'] = cp.info.webhookClientCAFile;
      flags['pool-webhook-client-names'] = WEBHOOK_CLIENT_NAME;
    }
    await loadBalancerJob.register(manager, flags, { namespace: SYSTEM_NS });
    const stop = new AbortController();
    const done = manager.run(stop.signal);
    await eventually(() => manager.metricsPort > 0);
    metricsPort = manager.metricsPort;
    stopController = async () => {
      stop.abort();
      await done;
      manager.client.close();
      stopController = undefined;
    };
  }

  beforeAll(async () => {
    cp = await new LocalControlPlane({ serviceClusterIPRange: '10.98.0.0/16,fd00:98::/108', kubeControllerManager: false }).start();
    client = KubeClient.fromFile(cp.kubeconfig, 'switchboard-test');
    await ensureCRDs(client);
    await client.create(Namespaces, { metadata: { name: SYSTEM_NS } });
    webhookPort = await freePort();
    await startController();
    // The webhook is registered and answering once a bad pool is denied.
    await eventually(async () => {
      try {
        await client.create(IPAddressPools, { metadata: { name: `probe-${randomSuffix()}` }, spec: { addresses: ['not-an-address'] } }, { dryRun: true });
        return false;
      } catch (err) {
        return err instanceof ApiError && err.message.includes('denied the request');
      }
    }, 30_000, 200);
  }, 120_000);

  afterAll(async () => {
    await stopController?.();
    client?.close();
    await cp?.stop();
  }, 60_000);

  /** A namespace with a pool (or pools) only its Services may use, so tests do not share addresses. */
  async function namespaceWithPools(pools: Record<string, Partial<IPAddressPoolSpec> & { addresses: string[] }>): Promise<string> {
    const ns = `lb-${randomSuffix()}`;
    await client.create(Namespaces, { metadata: { name: ns } });
    for (const [name, spec] of Object.entries(pools)) await createPool(`${ns}-${name}`, ns, spec);
    return ns;
  }

  const createPool = (name: string, ns: string, spec: Partial<IPAddressPoolSpec> & { addresses: string[] }) =>
    client.create<IPAddressPool>(IPAddressPools, { metadata: { name }, spec: { ...spec, serviceAllocation: { namespaces: [ns], ...spec.serviceAllocation } } });

  const createService = (ns: string, name: string, spec: Partial<Spec> = {}, annotations?: Record<string, string>) =>
    client.create<Service>(Services, {
      metadata: { name, namespace: ns, annotations },
      spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, ...spec },
    });

  const get = (ns: string, name: string) => client.get<Service>(Services, name, ns);
  const ips = (svc: Service): string[] => (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
  const condition = (svc: Service) => svc.status?.conditions?.find((c) => c.type === SERVICE_CONDITION_TYPE);

  /** Waits until the Service holds exactly `want`. */
  const holds = (ns: string, name: string, want: string[]) =>
    eventually(async () => {
      const svc = await get(ns, name);
      return JSON.stringify(ips(svc)) === JSON.stringify(want) && condition(svc)?.status === 'True' ? svc : false;
    }, 20_000);

  /** Waits until the Service is pending with `reason`. */
  const pendingWith = (ns: string, name: string, reason: string) =>
    eventually(async () => {
      const svc = await get(ns, name);
      const c = condition(svc);
      return c?.status === 'False' && c.reason === reason && ips(svc).length === 0 ? c : false;
    }, 20_000);

  const events = async (ns: string, name: string): Promise<[string, string, string][]> =>
    (await client.list<KubeEvent>(Events, { namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items.map((e) => [e.type ?? '', e.reason ?? '', e.message ?? '']);

  it('allocates from a pool: ingress with ipMode VIP, the pool annotation, a condition, an Event, pool status and metrics', async () => {
    const ns = await namespaceWithPools({ a: { addresses: ['198.51.100.0/30'] } });
    await createService(ns, 'web');
    const held = await holds(ns, 'web', ['198.51.100.1']);
    expect(held.status?.loadBalancer?.ingress).toEqual([{ ip: '198.51.100.1', ipMode: 'VIP' }]);
    expect(held.metadata?.annotations?.[ANNOTATION_ALLOCATED_FROM_POOL]).toBe(`${ns}-a`);
    expect(condition(held)).toMatchObject({ reason: 'Allocated', message: `Assigned IP ["198.51.100.1"] from pool "${ns}-a"` });
    await eventually(async () => (await events(ns, 'web')).some(([t, r, m]) => t === 'Normal' && r === 'IPAllocated' && m === 'Assigned IP ["198.51.100.1"]'));
    const pool = await eventually(async () => {
      const p = await client.get<IPAddressPool>(IPAddressPools, `${ns}-a`);
      return p.status?.assignedIPv4 === 1 ? p : false;
    });
    expect(pool.status).toMatchObject({ assignedIPv4: 1, availableIPv4: 1, assignedIPv6: 0, availableIPv6: 0 });
    expect(pool.status?.conditions?.find((c) => c.type === 'Valid')).toMatchObject({ status: 'True' });
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain(`switchboard_lb_pool_addresses_in_use{pool="${ns}-a",family="IPv4"} 1`);
    expect(metrics).toContain(`switchboard_lb_pool_addresses{pool="${ns}-a",family="IPv4"} 2`);
  });

  it('honours spec.loadBalancerIP, both annotation prefixes and address-pool; a taken address leaves the Service pending with the reason', async () => {
    const ns = await namespaceWithPools({ auto: { addresses: ['198.51.100.16/28'] }, manual: { addresses: ['198.51.100.32/28'], autoAssign: false } });
    await createService(ns, 'spec-ip', { loadBalancerIP: '198.51.100.20' });
    await createService(ns, 'stable', {}, { 'metallb.io/loadBalancerIPs': '198.51.100.21' });
    await createService(ns, 'legacy', {}, { 'metallb.universe.tf/loadBalancerIPs': '198.51.100.40' });
    await createService(ns, 'by-pool', {}, { 'metallb.io/address-pool': `${ns}-manual` });
    await createService(ns, 'taken', {}, { 'metallb.io/loadBalancerIPs': '198.51.100.20' });
    await holds(ns, 'spec-ip', ['198.51.100.20']);
    await holds(ns, 'stable', ['198.51.100.21']);
    await holds(ns, 'legacy', ['198.51.100.40']);
    await holds(ns, 'by-pool', ['198.51.100.33']);
    const c = await pendingWith(ns, 'taken', 'SharingConflict');
    expect(c.message).toBe(`address 198.51.100.20 is in use by ${ns}/spec-ip, which does not allow sharing`);
    await eventually(async () => (await events(ns, 'legacy')).some(([t, r]) => t === 'Warning' && r === 'deprecatedAnnotation'));
    await eventually(async () => (await events(ns, 'taken')).some(([t, r]) => t === 'Warning' && r === 'AllocationFailed'));
  });

  it('shares an address under one sharing key when ports differ; a port clash stays pending with the reason', async () => {
    const ns = await namespaceWithPools({ one: { addresses: ['198.51.100.50/32'] } });
    const key = { 'metallb.io/allow-shared-ip': 'k1' };
    await createService(ns, 'http', { ports: [{ port: 80, protocol: 'TCP' }] }, key);
    await createService(ns, 'dns-tcp', { ports: [{ port: 53, protocol: 'TCP' }] }, key);
    await createService(ns, 'dns-udp', { ports: [{ port: 53, protocol: 'UDP' }] }, key);
    for (const name of ['http', 'dns-tcp', 'dns-udp']) await holds(ns, name, ['198.51.100.50']);
    await createService(ns, 'clash', { ports: [{ port: 80, protocol: 'TCP' }] }, { ...key, 'metallb.io/loadBalancerIPs': '198.51.100.50' });
    expect((await pendingWith(ns, 'clash', 'SharingConflict')).message).toBe(`port TCP/80 is already in use on "198.51.100.50" by ${ns}/http`);
  });

  it('gives a RequireDualStack Service one address per family from one pool, IPv4 first', async () => {
    const ns = await namespaceWithPools({ dual: { addresses: ['2001:db8:4::/126', '198.51.100.60/31'] } });
    await createService(ns, 'dual', { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] });
    await holds(ns, 'dual', ['198.51.100.60', '2001:db8:4::1']);
  });

  it('moves a Service when its pool shrinks or goes, and leaves it pending with the reason when no pool is left', async () => {
    const ns = await namespaceWithPools({
      first: { addresses: ['198.51.100.70-198.51.100.71'], serviceAllocation: { priority: 1 } },
      second: { addresses: ['198.51.100.80/32'], serviceAllocation: { priority: 2 } },
    });
    await createService(ns, 'mover');
    await holds(ns, 'mover', ['198.51.100.70']);
    const first = await client.get<IPAddressPool>(IPAddressPools, `${ns}-first`);
    await client.replace(IPAddressPools, { ...first, spec: { ...first.spec, addresses: ['198.51.100.71/32'] } });
    await holds(ns, 'mover', ['198.51.100.71']);
    await eventually(async () => (await events(ns, 'mover')).some(([, r, m]) => r === 'ClearAssignment' && m.includes('198.51.100.70 is not in any IPAddressPool')));
    await client.delete(IPAddressPools, `${ns}-first`);
    await holds(ns, 'mover', ['198.51.100.80']);
    await client.delete(IPAddressPools, `${ns}-second`);
    const c = await pendingWith(ns, 'mover', 'NoPoolMatches');
    expect(c.message).toMatch(/^no available IPs: no IPAddressPool may serve this Service/);
    await eventually(async () => (await get(ns, 'mover')).metadata?.annotations?.[ANNOTATION_ALLOCATED_FROM_POOL] === undefined);
  });

  it('releases the address when the type changes away, and does not hand a freed address to the next Service at once', async () => {
    const ns = await namespaceWithPools({ p: { addresses: ['198.51.100.90-198.51.100.93'] } });
    await createService(ns, 'first');
    await holds(ns, 'first', ['198.51.100.90']);
    await client.patch(Services, 'first', { spec: { type: 'ClusterIP' } }, 'merge', { namespace: ns });
    await eventually(async () => {
      const svc = await get(ns, 'first');
      return ips(svc).length === 0 && condition(svc) === undefined && svc.metadata?.annotations?.[ANNOTATION_ALLOCATED_FROM_POOL] === undefined;
    });
    await createService(ns, 'second');
    await holds(ns, 'second', ['198.51.100.91']);
  });

  it('ignores Services of another loadBalancerClass and handles its own class', async () => {
    const ns = await namespaceWithPools({ p: { addresses: ['198.51.100.96/30'] } });
    await createService(ns, 'theirs', { loadBalancerClass: 'example.com/other' });
    await createService(ns, 'ours', { loadBalancerClass: 'switchboard.dev/l2' });
    await holds(ns, 'ours', ['198.51.100.97']);
    const theirs = await get(ns, 'theirs');
    expect([ips(theirs), condition(theirs)]).toEqual([[], undefined]);
  });

  it('never moves a held address across controller restarts, with pending Services, and keeps the reuse order', async () => {
    const ns = await namespaceWithPools({ p: { addresses: ['198.51.100.100-198.51.100.101'] } });
    await createService(ns, 'h1');
    await holds(ns, 'h1', ['198.51.100.100']);
    await createService(ns, 'h2');
    await holds(ns, 'h2', ['198.51.100.101']);
    await createService(ns, 'w1');
    await pendingWith(ns, 'w1', 'PoolExhausted');

    await stopController?.();
    await createService(ns, 'w2'); // created while no controller runs
    await startController();
    await pendingWith(ns, 'w2', 'PoolExhausted');
    await holds(ns, 'h1', ['198.51.100.100']);
    await holds(ns, 'h2', ['198.51.100.101']);
    await pendingWith(ns, 'w1', 'PoolExhausted');

    // While down: h1 goes (freeing .100) and the pool grows by .102. The fresh address goes to the oldest pending
    // Service, the one just freed only to the next.
    await stopController?.();
    await client.delete(Services, 'h1', { namespace: ns });
    const pool = await client.get<IPAddressPool>(IPAddressPools, `${ns}-p`);
    await client.replace(IPAddressPools, { ...pool, spec: { ...pool.spec, addresses: ['198.51.100.100-198.51.100.102'] } });
    await startController();
    await holds(ns, 'w1', ['198.51.100.102']);
    await holds(ns, 'w2', ['198.51.100.100']);
    await holds(ns, 'h2', ['198.51.100.101']);
  });

  it('denies invalid and overlapping pools and invalid advertisements with clear messages; without the webhook the pool status says it', async () => {
    await client.create(IPAddressPools, { metadata: { name: 'base' }, spec: { addresses: ['203.0.113.0/29'] } });
    await eventually(async () => (await client.get<IPAddressPool>(IPAddressPools, 'base')).status?.conditions !== undefined);
    const denial = async (rt: ResourceType, body: object): Promise<string> => {
      try {
        await client.create(rt, body as { metadata: { name: string } });
      } catch (err) {
        if (err instanceof ApiError) return `${err.code} ${err.status.message}`;
        throw err;
      }
      throw new Error('not denied');
    };
    expect(await denial(IPAddressPools, { metadata: { name: 'hostbits' }, spec: { addresses: ['203.0.113.9/24'] } })).toBe(
      '422 admission webhook "ipaddresspools.switchboard.dev" denied the request: IPAddressPool.switchboard.dev "hostbits" is invalid: spec.addresses[0]: Invalid value: "203.0.113.9/24": host bits are set; write 203.0.113.0/24 for the whole network or 203.0.113.9/32 for this one address',
    );
    expect(await denial(IPAddressPools, { metadata: { name: 'overlap' }, spec: { addresses: ['203.0.113.4/30'] } })).toBe(
      '422 admission webhook "ipaddresspools.switchboard.dev" denied the request: IPAddressPool.switchboard.dev "overlap" is invalid: spec.addresses[0]: Invalid value: "203.0.113.4/30": overlaps with already defined "203.0.113.0/29" in IPAddressPool "base"',
    );
    expect(await denial(L2Advertisements, { metadata: { name: 'bad-if' }, spec: { interfaces: ['eth0/1'] } })).toBe(
      '422 admission webhook "l2advertisements.switchboard.dev" denied the request: L2Advertisement.switchboard.dev "bad-if" is invalid: spec.interfaces[0]: Invalid value: "eth0/1": must be a network interface name: 1 to 15 characters without \'/\', \':\' or spaces',
    );

    // The operator owns its configuration and would put it back: stop it, delete it, run on without the webhook.
    await stopController?.();
    await client.delete(WebhookConfigurations, WEBHOOK_CONFIGURATION).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
    await startController(false);
    await eventually(async () => {
      try {
        await client.create(IPAddressPools, { metadata: { name: 'overlap' }, spec: { addresses: ['203.0.113.4/30'] } });
        return true;
      } catch (err) {
        return false; // the API server may take a moment to stop calling the webhook
      }
    });
    const valid = await eventually(async () => {
      const p = await client.get<IPAddressPool>(IPAddressPools, 'overlap');
      const c = p.status?.conditions?.find((x) => x.type === 'Valid');
      return c?.status === 'False' ? c : false;
    });
    expect(valid).toMatchObject({
      reason: 'InvalidSpec',
      message: 'spec.addresses[0]: Invalid value: "203.0.113.4/30": overlaps with already defined "203.0.113.0/29" in IPAddressPool "base"',
    });
    await eventually(async () => (await events('default', 'overlap')).some(([t, r]) => t === 'Warning' && r === 'InvalidConfiguration'));
  });
});
