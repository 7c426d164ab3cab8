import { describe, expect, it } from '@jest/globals';
import type { Service } from '../../api/wire.js';
import { scriptedRandom } from './bands.js';
import { type ClaimValue, claimName, ipClaim, nodePortClaim } from './claim-names.js';
import { serviceIPRange } from './ip-range.js';
import { nodePortRange } from './port-range.js';
import {
  type AllocationConfig,
  type AllocationOutcome,
  type ClaimResult,
  type ClaimStore,
  type PickResult,
  claimInConfiguredRange,
  executePlan,
  heldClaims,
  planAllocation,
} from './service-allocation.js';
import { ALLOCATOR_ERRORS, type Status, errorString } from '../../api/status.js';

type Spec = NonNullable<Service['spec']>;
type Port = NonNullable<Spec['ports']>[number];

const svc = (spec: Spec): Service => ({
  metadata: { name: 'web', namespace: 'default' },
  spec: { type: 'ClusterIP', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
});
const nodePortSvc = (spec: Spec = {}): Service => svc({ type: 'NodePort', externalTrafficPolicy: 'Cluster', ...spec });
const lbSvc = (spec: Spec = {}): Service =>
  svc({ type: 'LoadBalancer', externalTrafficPolicy: 'Cluster', allocateLoadBalancerNodePorts: true, ...spec });
const ports = (...list: Port[]): Spec => ({ ports: list });

const V4: AllocationConfig = { ipRanges: [serviceIPRange('10.96.0.0/24')], nodePortRange: nodePortRange() };
const DUAL: AllocationConfig = { ...V4, ipRanges: [serviceIPRange('10.96.0.0/24'), serviceIPRange('fd00:10:96::/112')] };

/** Claims in memory, keyed by claim name as the API server would be. */
class MemoryStore implements ClaimStore {
  readonly held = new Set<string>();
  constructor(...taken: ClaimValue[]) {
    for (const value of taken) this.held.add(claimName(value));
  }
  async claim(value: ClaimValue): Promise<ClaimResult> {
    const name = claimName(value);
    if (this.held.has(name)) {
      return { ok: false, reason: value.kind === 'ip' ? ALLOCATOR_ERRORS.ipAlreadyAllocated : ALLOCATOR_ERRORS.portAlreadyAllocated };
    }
    this.held.add(name);
    return { ok: true };
  }
  async claimFirstFree(candidates: Iterable<ClaimValue>): Promise<PickResult> {
    for (const value of candidates) if ((await this.claim(value)).ok) return { ok: true, value };
    return { ok: false, reason: ALLOCATOR_ERRORS.rangeFull };
  }
  async isTaken(value: ClaimValue): Promise<boolean> {
    return this.held.has(claimName(value));
  }
}

async function allocate(
  newService: Service,
  options: { old?: Service; config?: AllocationConfig; store?: MemoryStore; dryRun?: boolean; random?: bigint[] } = {},
): Promise<AllocationOutcome> {
  const config = options.config ?? V4;
  const plan = planAllocation(options.old, newService, config);
  return executePlan(plan, config, options.store ?? new MemoryStore(), {
    dryRun: options.dryRun,
    random: scriptedRandom(...(options.random ?? [])),
  });
}

function deniedWith(outcome: AllocationOutcome): Status {
  if (outcome.outcome !== 'denied') throw new Error(`expected a denial, got ${outcome.outcome}`);
  return outcome.status;
}

function allocatedSpec(outcome: AllocationOutcome): Spec {
  if (outcome.outcome !== 'allocated') throw new Error(`expected an allocation, got ${JSON.stringify(outcome)}`);
  return outcome.service.spec ?? {};
}

describe('planAllocation on create', () => {
  it('picks one ClusterIP of the primary family and pads clusterIPs for it', () => {
    const plan = planAllocation(undefined, svc({}), DUAL);
    expect(plan.apiServerErrors).toEqual([]);
    expect(plan.clusterIPs).toEqual([{ kind: 'pick', family: 'IPv4', index: 0 }]);
    expect(plan.service.spec).toMatchObject({ ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4'], clusterIPs: [''] });
    expect(plan.nodePorts).toEqual([]);
    expect(plan.healthCheckNodePort).toBeUndefined();
  });

  it('claims a requested clusterIP given only as the singular field', () => {
    const plan = planAllocation(undefined, svc({ clusterIP: '10.96.0.10' }), V4);
    expect(plan.clusterIPs).toEqual([{ kind: 'claim', family: 'IPv4', index: 0, requested: '10.96.0.10' }]);
    expect(plan.service.spec?.clusterIPs).toEqual(['10.96.0.10']);
  });

  it('claims the given family and picks the other for a dual-stack Service', () => {
    const plan = planAllocation(undefined, svc({ ipFamilyPolicy: 'RequireDualStack', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'] }), DUAL);
    expect(plan.clusterIPs).toEqual([
      { kind: 'claim', family: 'IPv4', index: 0, requested: '10.96.0.10' },
      { kind: 'pick', family: 'IPv6', index: 1 },
    ]);
    expect(plan.service.spec?.clusterIPs).toEqual(['10.96.0.10', '']);
  });

  it('allocates nothing for headless or ExternalName Services, but resolves a headless Service\'s families', () => {
    const headless = planAllocation(undefined, svc({ clusterIP: 'None', clusterIPs: ['None'], selector: undefined }), V4);
    expect(headless.clusterIPs).toEqual([]);
    expect(headless.service.spec).toMatchObject({ ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] });
    const external = planAllocation(undefined, svc({ type: 'ExternalName', externalName: 'example.com', ports: [] }), V4);
    expect(external.clusterIPs).toEqual([]);
    expect(external.service.spec?.ipFamilies).toBeUndefined();
    expect(external.apiServerErrors).toEqual([]);
  });

  it('leaves stage-1 problems to the apiserver\'s own 422 and plans nothing', () => {
    const plan = planAllocation(undefined, svc({ clusterIP: 'fd00::5' }), V4);
    expect(plan.apiServerErrors.map((e) => errorString(e))).toEqual(['spec.clusterIPs[0]: Invalid value: ["fd00::5"]: IPv6 is not configured on this cluster']);
    expect(plan.clusterIPs).toEqual([]);
  });

  it('picks a nodePort per port of a NodePort Service and claims requested ones', () => {
    const plan = planAllocation(
      undefined,
      nodePortSvc(ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }, { name: 'https', port: 443, protocol: 'TCP' })),
      V4,
    );
    expect(plan.nodePorts).toEqual([
      { kind: 'claim', portIndex: 0, requested: 30080 },
      { kind: 'pick', portIndex: 1 },
    ]);
  });

  it('gives ports with the same number one nodePort (53/TCP + 53/UDP)', () => {
    const dns = (tcp?: number, udp?: number) =>
      nodePortSvc(ports({ name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: tcp }, { name: 'dns', port: 53, protocol: 'UDP', nodePort: udp }));
    expect(planAllocation(undefined, dns(), V4).nodePorts).toEqual([
      { kind: 'pick', portIndex: 0 },
      { kind: 'copy', portIndex: 1, fromPortIndex: 0 },
    ]);
    // A value requested on a later port serves the whole group; errors are reported at the first port.
    expect(planAllocation(undefined, dns(undefined, 30053), V4).nodePorts).toEqual([{ kind: 'claim', portIndex: 0, requested: 30053 }]);
    expect(planAllocation(undefined, dns(30053, 30054), V4).nodePorts).toEqual([
      { kind: 'claim', portIndex: 0, requested: 30053 },
      { kind: 'claim', portIndex: 1, requested: 30054 },
    ]);
  });

  it('with allocateLoadBalancerNodePorts=false only honours requested nodePorts, but still needs a health check port', () => {
    const plan = planAllocation(
      undefined,
      lbSvc({
        allocateLoadBalancerNodePorts: false,
        externalTrafficPolicy: 'Local',
        ports: [{ name: 'a', port: 80, protocol: 'TCP' }, { name: 'b', port: 81, protocol: 'TCP', nodePort: 30081 }],
      }),
      V4,
    );
    expect(plan.nodePorts).toEqual([{ kind: 'claim', portIndex: 1, requested: 30081 }]);
    expect(plan.healthCheckNodePort).toEqual({ kind: 'pick' });
  });

  it('claims a requested healthCheckNodePort', () => {
    const plan = planAllocation(undefined, lbSvc({ externalTrafficPolicy: 'Local', healthCheckNodePort: 30100 }), V4);
    expect(plan.healthCheckNodePort).toEqual({ kind: 'claim', requested: 30100 });
  });
});

describe('planAllocation on update', () => {
  const storedNodePort = nodePortSvc({
    clusterIP: '10.96.0.20',
    clusterIPs: ['10.96.0.20'],
    ipFamilies: ['IPv4'],
    ipFamilyPolicy: 'SingleStack',
    ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
  });

  it('has nothing to do for an unchanged Service', () => {
    const plan = planAllocation(storedNodePort, storedNodePort, V4);
    expect(plan).toMatchObject({ clusterIPs: [], nodePorts: [], release: { clusterIPs: [], nodePorts: [] }, apiServerErrors: [] });
  });

  it('keeps allocated values a re-applied manifest left out', () => {
    const reapplied = nodePortSvc({ ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    const plan = planAllocation(storedNodePort, reapplied, V4);
    expect(plan.nodePorts).toEqual([]);
    expect(plan.service.spec).toMatchObject({ clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], ports: [{ nodePort: 30080 }] });
  });

  it('claims a changed nodePort and releases the old one after the write', () => {
    const plan = planAllocation(storedNodePort, nodePortSvc({ ...storedNodePort.spec, ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30081 }] }), V4);
    expect(plan.nodePorts).toEqual([{ kind: 'claim', portIndex: 0, requested: 30081 }]);
    expect(plan.release.nodePorts).toEqual([nodePortClaim(30080)]);
  });

  it('releases every nodePort when the type becomes ClusterIP (the strategy wipes the unchanged values)', () => {
    const plan = planAllocation(storedNodePort, svc({ ...storedNodePort.spec, type: 'ClusterIP', externalTrafficPolicy: undefined }), V4);
    expect(plan.nodePorts).toEqual([]);
    expect(plan.release.nodePorts).toEqual([nodePortClaim(30080)]);
    expect(plan.apiServerErrors).toEqual([]);
  });

  it('releases the ClusterIPs when the type becomes ExternalName', () => {
    const update = svc({ ...storedNodePort.spec, type: 'ExternalName', externalName: 'example.com', externalTrafficPolicy: undefined });
    const plan = planAllocation(storedNodePort, update, V4);
    expect(plan.release).toEqual({ clusterIPs: [ipClaim('10.96.0.20')], nodePorts: [nodePortClaim(30080)] });
    expect(plan.apiServerErrors).toEqual([]);
  });

  it('allocates everything when an ExternalName Service becomes a NodePort', () => {
    const old = svc({ type: 'ExternalName', externalName: 'example.com', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    const plan = planAllocation(old, nodePortSvc(), V4);
    expect(plan.clusterIPs).toEqual([{ kind: 'pick', family: 'IPv4', index: 0 }]);
    expect(plan.nodePorts).toEqual([{ kind: 'pick', portIndex: 0 }]);
  });

  it('picks only the secondary on a dual-stack upgrade, and releases it on a downgrade', () => {
    const upgrade = svc({ ...storedNodePort.spec, type: 'ClusterIP', externalTrafficPolicy: undefined, ports: undefined, ipFamilyPolicy: 'RequireDualStack' });
    const single = svc({ ...upgrade.spec, ipFamilyPolicy: 'SingleStack' });
    const upgradePlan = planAllocation(single, upgrade, DUAL);
    expect(upgradePlan.clusterIPs).toEqual([{ kind: 'pick', family: 'IPv6', index: 1 }]);
    expect(upgradePlan.service.spec?.clusterIPs).toEqual(['10.96.0.20', '']);

    const dual = svc({ ...upgrade.spec, clusterIPs: ['10.96.0.20', 'fd00:10:96::20'], ipFamilies: ['IPv4', 'IPv6'] });
    const downgrade = svc({ ...dual.spec, ipFamilyPolicy: 'SingleStack' });
    const downgradePlan = planAllocation(dual, downgrade, DUAL);
    expect(downgradePlan.clusterIPs).toEqual([]);
    expect(downgradePlan.release.clusterIPs).toEqual([ipClaim('fd00:10:96::20')]);
    expect(downgradePlan.service.spec?.clusterIPs).toEqual(['10.96.0.20']);
  });

  it('allocates a health check port when it becomes needed and releases it when it is not', () => {
    const cluster = lbSvc({ clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] });
    const local = lbSvc({ ...cluster.spec, externalTrafficPolicy: 'Local' });
    expect(planAllocation(cluster, local, V4).healthCheckNodePort).toEqual({ kind: 'pick' });
    const stored = lbSvc({ ...local.spec, healthCheckNodePort: 30100 });
    const plan = planAllocation(stored, cluster, V4);
    expect(plan.healthCheckNodePort).toBeUndefined();
    expect(plan.release.nodePorts).toEqual([nodePortClaim(30100)]);
  });

  it('stops at a repeated (protocol, nodePort) with upstream\'s 500, which validation also reports', () => {
    const update = nodePortSvc({
      ...storedNodePort.spec,
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }, { name: 'alt', port: 81, protocol: 'TCP', nodePort: 30080 }],
    });
    const plan = planAllocation(storedNodePort, update, V4);
    expect(plan.nodePorts).toEqual([{ kind: 'fail', status: expect.objectContaining({ message: 'duplicate nodePort: {TCP 30080}', code: 500 }) }]);
    expect(plan.apiServerErrors.map((e) => errorString(e))).toEqual(['spec.ports[1].nodePort: Duplicate value: 30080']);
  });
});

describe('apiServerErrors: requests the apiserver rejects after allocating', () => {
  it.each<[string, Service | undefined, Service, string[]]>([
    [
      'a headless NodePort Service',
      undefined,
      nodePortSvc({ clusterIP: 'None', clusterIPs: ['None'] }),
      ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"],
    ],
    [
      'a headless LoadBalancer',
      undefined,
      lbSvc({ clusterIP: 'None', clusterIPs: ['None'] }),
      ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services"],
    ],
    [
      'a nodePort on a ClusterIP Service',
      undefined,
      svc(ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 })),
      ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    ],
    [
      'a healthCheckNodePort without Local traffic',
      undefined,
      lbSvc({ healthCheckNodePort: 30100 }),
      ["spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"],
    ],
    [
      'ExternalName with IP fields',
      undefined,
      svc({ type: 'ExternalName', externalName: 'example.com', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' }),
      [
        'spec.ipFamilies: Forbidden: may not be set for ExternalName services',
        'spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services',
      ],
    ],
    [
      'a changed clusterIP',
      svc({ clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' }),
      svc({ clusterIP: '10.96.0.21', clusterIPs: ['10.96.0.21'], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' }),
      ['spec.clusterIPs[0]: Invalid value: ["10.96.0.21"]: may not change once set'],
    ],
    [
      'a changed healthCheckNodePort',
      lbSvc({ externalTrafficPolicy: 'Local', healthCheckNodePort: 30100 }),
      lbSvc({ externalTrafficPolicy: 'Local', healthCheckNodePort: 30101 }),
      ['spec.healthCheckNodePort: Forbidden: field is immutable'],
    ],
  ])('%s', async (_label, old, update, errors) => {
    const plan = planAllocation(old, update, V4);
    expect(plan.apiServerErrors.map((e) => errorString(e))).toEqual(errors);
    const store = new MemoryStore();
    const outcome = await executePlan(plan, V4, store);
    expect(outcome.outcome).toBe('passThrough');
    expect(store.held.size).toBe(0);
  });
});

describe('executePlan', () => {
  it('picks a ClusterIP from the dynamic band and writes both fields', async () => {
    const outcome = await allocate(svc({}), { random: [0n] });
    expect(allocatedSpec(outcome)).toMatchObject({ clusterIP: '10.96.0.17', clusterIPs: ['10.96.0.17'], ipFamilies: ['IPv4'] });
    expect(outcome).toMatchObject({ claimed: [ipClaim('10.96.0.17')] });
  });

  it('skips taken addresses and keeps the spelling of a requested IP in the spec', async () => {
    const store = new MemoryStore(ipClaim('10.96.0.17'));
    expect(allocatedSpec(await allocate(svc({}), { store, random: [0n] })).clusterIP).toBe('10.96.0.18');
    const spelled = await allocate(svc({ clusterIP: '010.096.000.011' }), { store });
    expect(allocatedSpec(spelled).clusterIPs).toEqual(['010.096.000.011']);
    expect(store.held.has('ipv4-10-96-0-11')).toBe(true);
  });

  it('answers a taken requested IP with the exact 422', async () => {
    const status = deniedWith(await allocate(svc({ clusterIP: '10.96.0.50' }), { store: new MemoryStore(ipClaim('10.96.0.50')) }));
    expect(status.code).toBe(422);
    expect(status.message).toBe(
      'Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.50"]: failed to allocate IP 10.96.0.50: provided IP is already allocated',
    );
  });

  it('answers a requested IP outside every range as v1.34 does', async () => {
    const status = deniedWith(await allocate(svc({ clusterIP: '10.97.0.1' })));
    expect(status.message).toBe(
      'Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.97.0.1"]: failed to allocate IP 10.97.0.1: the provided network does not match the current range',
    );
    const broadcast = deniedWith(await allocate(svc({ clusterIP: '10.96.0.255' })));
    expect(broadcast.details?.causes?.[0].message).toContain('the provided network does not match the current range');
  });

  it('renders the go-syntax style when configured', async () => {
    const config = { ...V4, valueStyle: 'go-syntax' as const };
    const status = deniedWith(await allocate(svc({ clusterIP: '10.96.0.50' }), { config, store: new MemoryStore(ipClaim('10.96.0.50')) }));
    expect(status.message).toBe(
      'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.50"}: failed to allocate IP 10.96.0.50: provided IP is already allocated',
    );
  });

  it('answers an exhausted range with a 500', async () => {
    const config = { ...V4, ipRanges: [serviceIPRange('10.96.0.0/29')] };
    const store = new MemoryStore(...[1, 2, 3, 4, 5, 6].map((i) => ipClaim(`10.96.0.${i}`)));
    const status = deniedWith(await allocate(svc({}), { config, store }));
    expect(status).toMatchObject({ code: 500, reason: 'InternalError', message: 'Internal error occurred: failed to allocate a serviceIP: range is full' });
  });

  it('returns what it claimed before a later family failed, so the caller can free it', async () => {
    const config = { ...DUAL, ipRanges: [serviceIPRange('10.96.0.0/24'), serviceIPRange('fd00::/125')] };
    const store = new MemoryStore(...[1, 2, 3, 4, 5, 6, 7].map((i) => ipClaim(`fd00::${i}`)));
    const outcome = await allocate(svc({ ipFamilyPolicy: 'RequireDualStack', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'] }), { config, store });
    expect(deniedWith(outcome).message).toBe('Internal error occurred: failed to allocate a serviceIP: range is full');
    expect(outcome).toMatchObject({ claimed: [ipClaim('10.96.0.10')] });
  });

  it('fills dual-stack clusterIPs in family order', async () => {
    const outcome = await allocate(svc({ ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv6'] }), { config: DUAL, random: [0n, 0n] });
    expect(allocatedSpec(outcome)).toMatchObject({
      clusterIP: 'fd00:10:96::101',
      clusterIPs: ['fd00:10:96::101', '10.96.0.17'],
      ipFamilies: ['IPv6', 'IPv4'],
    });
  });

  it('answers a taken or out-of-range nodePort with the exact 422', async () => {
    const taken = await allocate(nodePortSvc(ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30672 })), {
      store: new MemoryStore(nodePortClaim(30672)),
    });
    expect(deniedWith(taken).message).toBe(
      'Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 30672: provided port is already allocated',
    );
    const low = await allocate(nodePortSvc(ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 80 })));
    expect(deniedWith(low).message).toBe(
      'Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767',
    );
  });

  it('refuses a nodePort this same request already took for another port number', async () => {
    const service = nodePortSvc(
      ports({ name: 'a', port: 80, protocol: 'TCP', nodePort: 30080 }, { name: 'b', port: 81, protocol: 'UDP', nodePort: 30080 }),
    );
    const outcome = await allocate(service);
    expect(deniedWith(outcome).message).toBe(
      'Service "web" is invalid: spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated',
    );
    expect(outcome).toMatchObject({ claimed: [expect.objectContaining({ kind: 'ip' }), nodePortClaim(30080)] });
  });

  it('shares one nodePort between 53/TCP and 53/UDP and picks from the dynamic band', async () => {
    const dns = nodePortSvc(ports({ name: 'dns-tcp', port: 53, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }));
    const spec = allocatedSpec(await allocate(dns, { random: [0n, 0n] }));
    expect(spec.ports?.map((p) => p.nodePort)).toEqual([30086, 30086]);
  });

  it('answers an exhausted nodePort range with a 500', async () => {
    const config = { ...V4, nodePortRange: nodePortRange('30000-30001') };
    const store = new MemoryStore(nodePortClaim(30000), nodePortClaim(30001));
    const status = deniedWith(await allocate(nodePortSvc(), { config, store }));
    expect(status.message).toBe('Internal error occurred: failed to allocate a nodePort: range is full');
  });

  it('allocates the health check port from the same pool, and any failure there is a 500', async () => {
    const local = (hc?: number) => lbSvc({ externalTrafficPolicy: 'Local', healthCheckNodePort: hc, ...ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }) });
    expect(allocatedSpec(await allocate(local(), { random: [0n, 1n] })).healthCheckNodePort).toBe(30087);
    const clash = deniedWith(await allocate(local(30080)));
    expect(clash).toMatchObject({
      code: 500,
      message: 'Internal error occurred: failed to allocate requested HealthCheck NodePort 30080: provided port is already allocated',
    });
    const config = { ...V4, nodePortRange: nodePortRange('30080') };
    const full = deniedWith(await allocate(local(), { config }));
    expect(full.message).toBe('Internal error occurred: failed to allocate a HealthCheck NodePort 0: range is full');
  });

  it('claims nothing on dry-run and hands out upstream\'s placeholders', async () => {
    const store = new MemoryStore();
    const service = nodePortSvc(
      ports(
        { name: 'a', port: 80, protocol: 'TCP' },
        { name: 'b', port: 81, protocol: 'TCP' },
      ),
    );
    const outcome = await allocate(service, { store, dryRun: true, config: DUAL });
    expect(allocatedSpec(outcome)).toMatchObject({ clusterIP: '10.96.0.0', ports: [{ nodePort: 32769 }, { nodePort: 32770 }] });
    expect(outcome).toMatchObject({ claimed: [], release: { clusterIPs: [], nodePorts: [] } });
    expect(store.held.size).toBe(0);

    const requestedFirst = nodePortSvc(ports({ name: 'a', port: 80, protocol: 'TCP', nodePort: 30080 }, { name: 'b', port: 81, protocol: 'TCP' }));
    expect(allocatedSpec(await allocate(requestedFirst, { dryRun: true })).ports?.map((p) => p.nodePort)).toEqual([30080, 30081]);
    const held = deniedWith(await allocate(requestedFirst, { dryRun: true, store: new MemoryStore(nodePortClaim(30080)) }));
    expect(held.code).toBe(422);
  });

  it('on dry-run checks a requested IP against one range only, with the single-range error, and not whether it is free', async () => {
    const store = new MemoryStore(ipClaim('10.96.0.50'));
    expect(allocatedSpec(await allocate(svc({ clusterIP: '10.96.0.50' }), { store, dryRun: true })).clusterIP).toBe('10.96.0.50');
    const outside = deniedWith(await allocate(svc({ clusterIP: '10.97.0.01' }), { dryRun: true }));
    expect(outside.message).toBe(
      'Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.97.0.01"]: failed to allocate IP 10.97.0.01: ' +
        'the provided IP (10.97.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/24',
    );
  });

  it('hands the plan\'s releases back only on success', async () => {
    const stored = nodePortSvc({ clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] });
    const moved = nodePortSvc({ ...stored.spec, ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30081 }] });
    const outcome = await allocate(moved, { old: stored, store: new MemoryStore(ipClaim('10.96.0.20'), nodePortClaim(30080)) });
    expect(outcome).toMatchObject({ outcome: 'allocated', claimed: [nodePortClaim(30081)], release: { nodePorts: [nodePortClaim(30080)] } });
  });

  it('lets a request with stage-1 problems through untouched, without touching the store', async () => {
    const store = new MemoryStore();
    const outcome = await allocate(svc({ ipFamilyPolicy: 'RequireDualStack' }), { store });
    if (outcome.outcome !== 'passThrough') throw new Error(`expected a pass-through, got ${JSON.stringify(outcome)}`);
    expect(outcome.errors.map((e) => errorString(e))).toEqual([
      'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services',
    ]);
    expect(store.held.size).toBe(0);
  });
});

describe('heldClaims', () => {
  it('lists ClusterIPs, nodePorts once each, and the health check port while needed', () => {
    const service = lbSvc({
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: 30100,
      clusterIPs: ['10.96.0.20', 'fd00::20'],
      ports: [
        { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30053 },
        { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 },
      ],
    });
    expect(heldClaims(service)).toEqual([ipClaim('10.96.0.20'), ipClaim('fd00::20'), nodePortClaim(30053), nodePortClaim(30100)]);
    expect(heldClaims(lbSvc({ healthCheckNodePort: 30100, ports: [] }))).toEqual([]);
  });

  it('holds no IPs for headless or ExternalName Services', () => {
    expect(heldClaims(svc({ clusterIPs: ['None'] }))).toEqual([]);
    expect(heldClaims(svc({ type: 'ExternalName', clusterIPs: ['10.96.0.20'] }))).toEqual([]);
  });
});

describe('claimInConfiguredRange', () => {
  it('checks IPs against the ranges of their family and ports against the nodePort range', () => {
    expect(claimInConfiguredRange(DUAL, ipClaim('10.96.0.5'))).toBe(true);
    expect(claimInConfiguredRange(DUAL, ipClaim('10.96.0.255'))).toBe(false);
    expect(claimInConfiguredRange(DUAL, ipClaim('fd00:10:96::ffff'))).toBe(true);
    expect(claimInConfiguredRange(V4, ipClaim('fd00:10:96::5'))).toBe(false);
    expect(claimInConfiguredRange(V4, nodePortClaim(32767))).toBe(true);
    expect(claimInConfiguredRange(V4, nodePortClaim(80))).toBe(false);
  });
});

describe('several Service CIDRs of one family (live ServiceCIDRs)', () => {
  const TWO: AllocationConfig = { ...V4, ipRanges: [serviceIPRange('10.96.0.0/29'), serviceIPRange('10.250.0.0/28')], families: ['IPv4'] };

  it('grants a requested IP in any CIDR allocated from', async () => {
    expect(allocatedSpec(await allocate(svc({ clusterIP: '10.250.0.5' }), { config: TWO })).clusterIPs).toEqual(['10.250.0.5']);
  });

  it('refuses an IP of a CIDR being deleted (in existingIPRanges only) as upstream does', async () => {
    const config = { ...TWO, ipRanges: [TWO.ipRanges[0]], existingIPRanges: TWO.ipRanges };
    const status = deniedWith(await allocate(svc({ clusterIP: '10.250.0.5' }), { config }));
    expect(status.message).toContain('failed to allocate IP 10.250.0.5: the provided network does not match the current range');
    expect(claimInConfiguredRange(config, ipClaim('10.250.0.5'))).toBe(true);
  });

  it('tries the CIDRs in the random order drawn, and goes on to the next when one is full', async () => {
    // pickOrder draws first: 1 keeps [/29, /28]; then a start in the /29 (6 addresses, no static band).
    const intoFirst = await allocate(svc({}), { config: TWO, random: [1n, 0n] });
    expect(allocatedSpec(intoFirst).clusterIP).toBe('10.96.0.1');
    const intoSecond = await allocate(svc({}), { config: TWO, random: [0n, 0n] });
    expect(allocatedSpec(intoSecond).clusterIP).toBe('10.250.0.1');
    const firstFull = new MemoryStore(...[1, 2, 3, 4, 5, 6].map((i) => ipClaim(`10.96.0.${i}`)));
    expect(allocatedSpec(await allocate(svc({}), { config: TWO, store: firstFull, random: [1n, 0n, 3n] })).clusterIP).toBe('10.250.0.4');
  });

  it('answers range is full once every CIDR is, and when none is allocated from', async () => {
    const all = new MemoryStore(...[1, 2, 3, 4, 5, 6].map((i) => ipClaim(`10.96.0.${i}`)), ...Array.from({ length: 14 }, (_, i) => ipClaim(`10.250.0.${i + 1}`)));
    expect(deniedWith(await allocate(svc({}), { config: TWO, store: all })).message).toBe('Internal error occurred: failed to allocate a serviceIP: range is full');
    const none = { ...TWO, ipRanges: [] };
    expect(deniedWith(await allocate(svc({}), { config: none })).message).toBe('Internal error occurred: failed to allocate a serviceIP: range is full');
    expect(deniedWith(await allocate(svc({ clusterIP: '10.96.0.2' }), { config: none })).message).toContain('the provided network does not match the current range');
  });

  it('keeps the served families when a family has no CIDR allocated from', () => {
    const plan = planAllocation(undefined, svc({ ipFamilies: ['IPv6'] }), { ...TWO, ipRanges: [] });
    expect(plan.apiServerErrors.map((e) => errorString(e))).toEqual(['spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster']);
  });

  it('on dry-run accepts an IP of any CIDR, and answers one in none with the first CIDR', async () => {
    expect((await allocate(svc({ clusterIP: '10.250.0.5' }), { config: TWO, dryRun: true })).outcome).toBe('allocated');
    const status = deniedWith(await allocate(svc({ clusterIP: '10.251.0.5' }), { config: TWO, dryRun: true }));
    expect(status.message).toContain('failed to allocate IP 10.251.0.5: the provided IP (10.251.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/29');
  });
});

describe('reservations (values reserved for the Service)', () => {
  const reserve = async (service: Service, reserved: ClaimValue[], store = new MemoryStore(), old?: Service, config: AllocationConfig = V4) =>
    executePlan(planAllocation(old, service, config), config, store, { reserved, random: scriptedRandom() });

  it('gives a Service asking for none its reserved ClusterIP and nodePorts first, lowest port first', async () => {
    const outcome = await reserve(
      nodePortSvc(ports({ name: 'a', port: 80, protocol: 'TCP' }, { name: 'b', port: 81, protocol: 'TCP' })),
      [ipClaim('10.96.0.77'), nodePortClaim(30500), nodePortClaim(30600)],
    );
    const spec = allocatedSpec(outcome);
    expect(spec.clusterIPs).toEqual(['10.96.0.77']);
    expect(spec.ports?.map((p) => p.nodePort)).toEqual([30500, 30600]);
  });

  it('picks dynamically for what no reservation covers, and skips reservations out of range or of another family', async () => {
    const config = { ...V4, nodePortRange: nodePortRange('30000-30099') };
    const outcome = await reserve(
      nodePortSvc(ports({ name: 'a', port: 80, protocol: 'TCP' }, { name: 'b', port: 81, protocol: 'TCP' })),
      [ipClaim('fd00::5'), ipClaim('10.97.0.5'), nodePortClaim(30050), nodePortClaim(31000)],
      new MemoryStore(),
      undefined,
      config,
    );
    const spec = allocatedSpec(outcome);
    expect(spec.clusterIP).toBe('10.96.0.17');
    expect(spec.ports?.map((p) => p.nodePort)).toEqual([30050, 30016]); // 30016: the dynamic band's first port
  });

  it('does not give a reservation twice, nor one the request asks for by number', async () => {
    const outcome = await reserve(
      nodePortSvc(ports({ name: 'a', port: 80, protocol: 'TCP', nodePort: 30500 }, { name: 'b', port: 81, protocol: 'TCP' })),
      [nodePortClaim(30500), nodePortClaim(30600)],
    );
    expect(allocatedSpec(outcome).ports?.map((p) => p.nodePort)).toEqual([30500, 30600]);
  });

  it('falls back to a dynamic pick when the reserved value cannot be claimed', async () => {
    const outcome = await reserve(svc({}), [ipClaim('10.96.0.77')], new MemoryStore(ipClaim('10.96.0.77')));
    expect(allocatedSpec(outcome).clusterIP).toBe('10.96.0.17');
  });

  it('leaves an update that keeps its values alone', async () => {
    const old = nodePortSvc({ clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], ipFamilies: ['IPv4'], ports: [{ name: 'a', port: 80, protocol: 'TCP', nodePort: 30100 }] });
    const outcome = await reserve(nodePortSvc({ ports: [{ name: 'a', port: 80, protocol: 'TCP', nodePort: 30100 }] }), [ipClaim('10.96.0.77'), nodePortClaim(30500)], new MemoryStore(), old);
    const spec = allocatedSpec(outcome);
    expect(spec.clusterIP).toBe('10.96.0.20');
    expect(spec.ports?.[0].nodePort).toBe(30100);
  });
});
