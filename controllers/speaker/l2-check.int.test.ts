// The speakers tell the truth about the addresses they announce, on a real network (netlab.ts: three node
// namespaces, a client, and two more hosts on the bridge; a real speaker process per node; the allocation
// controller and an API server of this suite's own, as in l2-network.int.test.ts):
// - a host that already holds a pool address (its kernel answers ARP and NDP for it) makes the speaker's probe before
//   first use find it: that address is never announced (arping/ndisc6 from the client hear only that host), the pool
//   status counts it, the Service is moved to another address, and a Service asking for it by name stays pending;
// - a pool created later is probed whole: the address the host holds is in its status before any Service asks;
// - a rogue host answering for an announced address turns the Service's L2Healthy condition to ForeignResponder,
//   with a Warning Event naming its MAC, within a bounded time; once it stops, L2Healthy is Answered again.
// - a Service only one node may announce is self-checked as well, by a node on the subnet that is not eligible;
// - a Service that leaves the speakers' care (turned ClusterIP, its ingress gone) loses its L2Healthy condition.
// Needs root and `ip netns`; skipped otherwise.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../runtime/client.js';
import { Events, Leases, Namespaces, Nodes, Services } from '../../api/resources.js';
import type { KubeEvent, Lease, Service } from '../../api/wire.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { ManagedProcess } from '../../cmd/up/controlplane/processes.js';
import { eventually } from '../../e2e/jest/cluster.js';
import { IPAddressPools, type IPAddressPool } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';
import { ServiceL2Statuses, type ServiceL2Status } from '../../crds/servicel2status.js';
import { APP_NS, SPEAKER_NS, SWITCHBOARD_CLI, arping, createLabService, ndisc, startLoadBalancerController, type LabServiceOptions } from '../../e2e/jest/l2-lab.js';
import { SERVICE_CONDITION_TYPE } from '../../allocators/loadbalancer/allocator.js';
import { ensureCRDs } from '../loadbalancer/crds.js';
import { FORWARDER, LAN_PREFIX4, LAN_PREFIX6, NetLab, inNs, netlabUnavailable, run, type LabHost } from '../../cmd/up/netlab.js';

const skipReason = netlabUnavailable();
const suite = skipReason ? describe.skip : describe;

const SELF_CHECK_INTERVAL_MS = 1000;
/** ForeignResponder must show within this long: two confirming probes a self-check interval apart, plus the writes. */
const DETECTION_BOUND_MS = 3 * SELF_CHECK_INTERVAL_MS + 2000;
/** The first address of the pool, which the allocator hands out first: the squatter holds it. */
const TAKEN4 = `${LAN_PREFIX4}.200`;
const TAKEN6 = `${LAN_PREFIX6}200`;
/** An address of a pool created later, which the squatter holds too: the pool's probe finds it before any Service. */
const SPARE_TAKEN = `${LAN_PREFIX4}.221`;

suite(`L2 self-check and conflict detection in network namespaces${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let lab: NetLab;
  let squatter: LabHost;
  let rogue: LabHost;
  let cp: LocalControlPlane;
  let client: KubeClient;
  let work: string;
  let rootForwarder: ManagedProcess | undefined;
  const procs: ManagedProcess[] = [];
  const nodeMacs = new Map<string, string>();
  let controller: { stop: () => Promise<unknown> } | undefined;

  beforeAll(async () => {
    for (const tool of ['arping', 'ndisc6']) {
      if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: apt-get install iputils-arping ndisc6`);
    }
    work = mkdtempSync(join(tmpdir(), 'sb-l2check-'));
    lab = new NetLab().create(3);
    squatter = lab.addLanHost('sq', 150);
    rogue = lab.addLanHost('rg', 151);
    // The squatter holds the pool's first addresses before any Service exists: its kernel answers ARP and NDP for them.
    run(['ip', '-n', squatter.ns, 'addr', 'add', `${TAKEN4}/32`, 'dev', 'eth0']);
    run(['ip', '-n', squatter.ns, '-6', 'addr', 'add', `${TAKEN6}/128`, 'dev', 'eth0', 'nodad']);
    run(['ip', '-n', squatter.ns, 'addr', 'add', `${SPARE_TAKEN}/32`, 'dev', 'eth0']);

    cp = await new LocalControlPlane({ serviceClusterIPRange: '10.99.0.0/16,fd00:99::/108', kubeControllerManager: false }).start();
    const apiPort = Number(new URL(cp.server).port);
    client = KubeClient.fromFile(cp.kubeconfig, 'switchboard-test');
    await ensureCRDs(client);
    for (const name of [SPEAKER_NS, APP_NS]) await client.create(Namespaces, { metadata: { name } });
    await client.create(IPAddressPools, { metadata: { name: 'lan' }, spec: { addresses: [`${TAKEN4}-${LAN_PREFIX4}.209`, `${TAKEN6}-${LAN_PREFIX6}209`] } });
    await client.create(L2Advertisements, { metadata: { name: 'lan' }, spec: { ipAddressPools: ['lan'] } });

    controller = await startLoadBalancerController(cp.kubeconfig, SPEAKER_NS);

    // Two Services get the taken addresses while no speaker runs (say the squatter came later): the pools' probe at
    // the speakers' start skips addresses in use, so their winners' probes before first use are what find them.
    await createService('first', 'IPv4');
    await createService('first6', 'IPv6');
    for (const [name, taken] of [['first', TAKEN4], ['first6', TAKEN6]]) {
      await eventually(async () => (await client.get<Service>(Services, name, APP_NS)).status?.loadBalancer?.ingress?.[0]?.ip === taken, 30_000);
    }

    const socketPath = join(work, 'api.sock');
    rootForwarder = ManagedProcess.start('forwarder-root', process.execPath, ['-e', FORWARDER, socketPath, String(apiPort)], join(work, 'forwarder-root.log'));
    for (const [i, host] of lab.nodes.entries()) {
      const name = `node${i + 1}`;
      nodeMacs.set(name, host.mac);
      await client.create(Nodes, { metadata: { name, labels: { 'kubernetes.io/hostname': name } } });
      procs.push(ManagedProcess.start(`forwarder-${name}`, 'ip', inNs(host.ns, process.execPath, '-e', FORWARDER, String(apiPort), socketPath).slice(1), join(work, `forwarder-${name}.log`)));
      const speaker = inNs(host.ns, process.execPath, SWITCHBOARD_CLI, 'speaker', `--node-name=${name}`, `--kubeconfig=${cp.kubeconfig}`, `--namespace=${SPEAKER_NS}`);
      speaker.push('--garp-count=1', `--self-check-interval=${SELF_CHECK_INTERVAL_MS}ms`, '--metrics-bind-address=0', '--log-level=debug');
      procs.push(ManagedProcess.start(`speaker-${name}`, 'ip', speaker.slice(1), join(work, `speaker-${name}.log`)));
    }
    await eventually(async () => {
      const leases = await client.list<Lease>(Leases, { namespace: SPEAKER_NS });
      return leases.items.filter((l) => Date.parse(l.spec?.renewTime ?? '') + 2000 > Date.now()).length === 3;
    }, 60_000, 200);
  }, 180_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.kill();
    await rootForwarder?.kill();
    await controller?.stop();
    client?.close();
    await cp?.stop();
    lab?.destroy();
    if (work && !process.env.SWITCHBOARD_KEEP_CONTROLPLANE) rmSync(work, { recursive: true, force: true });
    else if (work) process.stderr.write(`[l2check] speaker logs kept in ${work}\n`);
  }, 60_000);

  const createService = (name: string, family: 'IPv4' | 'IPv6', annotations?: Record<string, string>): Promise<void> => createLabService(client, APP_NS, name, family, { annotations });

  /** The Service's address once a node announces it (ServiceL2Status Announced=True), with that node's MAC. */
  const announced = (name: string, intervalMs = 100): Promise<{ vip: string; mac: string; node: string }> =>
    eventually(async () => {
      const s = await client.get<ServiceL2Status>(ServiceL2Statuses, name, APP_NS);
      const ok = s.status?.conditions?.find((c) => c.type === 'Announced')?.status === 'True';
      const vip = s.status?.addresses?.[0];
      const svc = await client.get<Service>(Services, name, APP_NS);
      const node = s.status?.node ?? '';
      return ok && vip && svc.status?.loadBalancer?.ingress?.[0]?.ip === vip ? { vip, node, mac: nodeMacs.get(node) ?? '' } : false;
    }, 30_000, intervalMs);

  const condition = async (name: string, type: string) => (await client.get<Service>(Services, name, APP_NS)).status?.conditions?.find((c) => c.type === type);
  const events = async (name: string) => (await client.list<KubeEvent>(Events, { namespace: APP_NS, fieldSelector: `involvedObject.name=${name}` })).items;

  const arpingMacs = async (vip: string, count = 3): Promise<string[]> => (await arping(lab.client!.ns, vip, count)).macs;
  const ndiscMacs = (vip: string): Promise<string[]> => ndisc(lab.client!.ns, vip);

  it('never announces an address another host holds (IPv4): the pool counts it, the Service moves, and one asking for it stays pending', async () => {
    const pool = await eventually(async () => {
      const p = await client.get<IPAddressPool>(IPAddressPools, 'lan');
      return p.status?.conflicts?.some((c) => c.address === TAKEN4) ? p : false;
    }, 30_000);
    expect(pool.status?.conflicts?.find((c) => c.address === TAKEN4)).toMatchObject({ address: TAKEN4, macs: [squatter.mac] });
    expect(pool.status?.addressesInConflict).toBeGreaterThanOrEqual(1);
    const first = await announced('first');
    expect(first.vip).not.toBe(TAKEN4);
    process.stderr.write(`[l2check] ${TAKEN4} held by ${squatter.mac}: Service "first" moved to ${first.vip}, announced by ${first.node}\n`);
    const warning = (await events('first')).find((e) => e.reason === 'AddressConflict');
    expect(warning).toMatchObject({ type: 'Warning', message: expect.stringContaining(`${squatter.mac} already answers for ${TAKEN4}`) });
    // Events are recorded after the writes they go with: wait for them.
    await eventually(async () => {
      const reasons = new Set((await events('first')).map((e) => e.reason));
      return ['ClearAssignment', 'IPAllocated', 'nodeAssigned'].every((r) => reasons.has(r));
    }, 10_000);
    // Only the squatter answers for the address; the Service's new address is answered by its node.
    expect(await arpingMacs(TAKEN4)).toEqual([squatter.mac, squatter.mac, squatter.mac]);
    expect(await arpingMacs(first.vip, 2)).toEqual([first.mac, first.mac]);

    await createService('pinned', 'IPv4', { 'metallb.io/loadBalancerIPs': TAKEN4 });
    const pending = await eventually(async () => {
      const c = await condition('pinned', SERVICE_CONDITION_TYPE);
      return c?.reason === 'AddressConflict' ? c : false;
    }, 30_000);
    expect(pending).toMatchObject({ status: 'False', message: expect.stringContaining(`address ${TAKEN4} is in use on the LAN by ${squatter.mac}`) });
    expect((await client.get<Service>(Services, 'pinned', APP_NS)).status?.loadBalancer?.ingress ?? []).toEqual([]);
    expect(await arpingMacs(TAKEN4, 2)).toEqual([squatter.mac, squatter.mac]);
    const printed = await cp.kubectl(['get', 'ipaddresspools', 'lan']);
    expect(printed.stdout).toMatch(/IN CONFLICT/);
  });

  it('never announces an address another host holds (IPv6)', async () => {
    const first = await announced('first6');
    expect(first.vip).not.toBe(TAKEN6);
    const pool = await client.get<IPAddressPool>(IPAddressPools, 'lan');
    expect(pool.status?.conflicts?.find((c) => c.address === TAKEN6)).toMatchObject({ macs: [squatter.mac] });
    // Distinct MACs: the squatter also answers the pool deputy's rechecks to all nodes, which ndisc6 may hear.
    expect(new Set(await ndiscMacs(TAKEN6))).toEqual(new Set([squatter.mac]));
    expect(new Set(await ndiscMacs(first.vip))).toEqual(new Set([first.mac]));
  });

  it('probes the free addresses of a pool when it is created: the taken one is in its status before any Service asks', async () => {
    await client.create(IPAddressPools, { metadata: { name: 'spare' }, spec: { addresses: [`${LAN_PREFIX4}.220-${LAN_PREFIX4}.222`], autoAssign: false } });
    const pool = await eventually(async () => {
      const p = await client.get<IPAddressPool>(IPAddressPools, 'spare');
      return p.status?.addressesInConflict === 1 ? p : false;
    }, 20_000);
    expect(pool.status?.conflicts).toEqual([expect.objectContaining({ address: SPARE_TAKEN, macs: [squatter.mac] })]);
  });

  async function rogueAnswers(service: string, family: 'IPv4' | 'IPv6', options: LabServiceOptions = {}): Promise<void> {
    await createLabService(client, APP_NS, service, family, options);
    // A new address: probed before first use, then announced (the ServiceL2Status names the node once it answers).
    const allocatedAt = await eventually(async () => ((await client.get<Service>(Services, service, APP_NS)).status?.loadBalancer?.ingress?.length ? Date.now() : false), 30_000, 20);
    const { vip, node } = await announced(service, 20);
    if (options.local) expect(node).toBe(options.endpointNode ?? 'node1');
    const latency = Date.now() - allocatedAt;
    process.stderr.write(`[l2check] ${vip}: announced ${latency} ms after its allocation (probe before first use included)\n`);
    expect(latency).toBeLessThan(3000);
    await eventually(async () => (await condition(service, 'L2Healthy'))?.reason === 'Answered', 30_000);
    const healthy = await condition(service, 'L2Healthy');
    expect(healthy).toMatchObject({ status: 'True', message: `${vip} answered by the elected node only` });

    // The rogue's kernel answers ARP probes and DAD solicitations for the address, with its own MAC.
    const started = Date.now();
    if (family === 'IPv4') run(['ip', '-n', rogue.ns, 'addr', 'add', `${vip}/32`, 'dev', 'eth0']);
    else run(['ip', '-n', rogue.ns, '-6', 'addr', 'add', `${vip}/128`, 'dev', 'eth0', 'nodad']);
    const foreign = await eventually(async () => {
      const c = await condition(service, 'L2Healthy');
      return c?.reason === 'ForeignResponder' ? c : false;
    }, DETECTION_BOUND_MS, 50);
    const detected = Date.now() - started;
    expect(foreign).toMatchObject({ status: 'False', message: expect.stringContaining(`${rogue.mac} answers for ${vip}`) });
    // A strategic merge of that one condition: the controller's allocation condition is still there.
    expect(await condition(service, SERVICE_CONDITION_TYPE)).toMatchObject({ status: 'True', reason: 'Allocated' });
    const warning = await eventually(async () => (await events(service)).find((e) => e.reason === 'ForeignResponder' && e.message?.includes(rogue.mac)) ?? false, 5000);
    expect(warning.type).toBe('Warning');

    if (family === 'IPv4') run(['ip', '-n', rogue.ns, 'addr', 'del', `${vip}/32`, 'dev', 'eth0']);
    else run(['ip', '-n', rogue.ns, '-6', 'addr', 'del', `${vip}/128`, 'dev', 'eth0']);
    const stopped = Date.now();
    await eventually(async () => (await condition(service, 'L2Healthy'))?.reason === 'Answered', DETECTION_BOUND_MS, 50);
    process.stderr.write(`[l2check] rogue ${rogue.mac} on ${vip}: ForeignResponder after ${detected} ms; Answered again ${Date.now() - stopped} ms after it stopped (self-check every ${SELF_CHECK_INTERVAL_MS} ms)\n`);
  }

  it('a rogue host answering ARP for an announced address: L2Healthy ForeignResponder with a Warning naming its MAC, then Answered once it stops', async () => {
    await rogueAnswers('web', 'IPv4');
  });

  it('a rogue host answering NDP for an announced IPv6 address: the same', async () => {
    await rogueAnswers('web6', 'IPv6');
  });

  it('a Service only one node may announce (externalTrafficPolicy Local, one local endpoint) is self-checked too: ForeignResponder, then Answered', async () => {
    // node2 is the only eligible node: the prober is a node that is not eligible but on the subnet (l2-check.ts proberFor).
    await rogueAnswers('solo', 'IPv4', { local: true, endpointNode: 'node2' });
  });

  /** How long until the Service has no L2Healthy condition left. */
  const healthRemoved = async (name: string): Promise<number> => {
    const started = Date.now();
    await eventually(async () => (await condition(name, 'L2Healthy')) === undefined, 10_000, 50);
    return Date.now() - started;
  };

  it('removes the L2Healthy condition once a Service is no longer a LoadBalancer', async () => {
    expect(await condition('web', 'L2Healthy')).toMatchObject({ reason: 'Answered' });
    await client.patch(Services, 'web', { spec: { type: 'ClusterIP', externalTrafficPolicy: null } }, 'merge', { namespace: APP_NS });
    const ms = await healthRemoved('web');
    process.stderr.write(`[l2check] "web" turned ClusterIP: L2Healthy removed after ${ms} ms\n`);
    // Only that condition: the controller's release and the speakers' leave nothing else behind, the Service stays.
    expect((await client.get<Service>(Services, 'web', APP_NS)).spec?.type).toBe('ClusterIP');
    await eventually(async () => (await client.getOrUndefined<ServiceL2Status>(ServiceL2Statuses, 'web', APP_NS)) === undefined, 10_000);
  });

  it('removes the L2Healthy condition once a LoadBalancer Service has no ingress left (the controller stopped, its addresses cleared)', async () => {
    expect(await condition('web6', 'L2Healthy')).toMatchObject({ reason: 'Answered' });
    // Without the controller nothing gives the address back: the Service stays a LoadBalancer without ingress.
    await controller?.stop();
    controller = undefined;
    await client.patch(Services, 'web6', { status: { loadBalancer: { ingress: [] } } }, 'merge', { namespace: APP_NS, subresource: 'status' });
    const ms = await healthRemoved('web6');
    process.stderr.write(`[l2check] "web6" lost its ingress: L2Healthy removed after ${ms} ms\n`);
    const svc = await client.get<Service>(Services, 'web6', APP_NS);
    expect({ type: svc.spec?.type, allocated: svc.status?.conditions?.find((c) => c.type === SERVICE_CONDITION_TYPE)?.reason }).toEqual({ type: 'LoadBalancer', allocated: 'Allocated' });
  });
});
